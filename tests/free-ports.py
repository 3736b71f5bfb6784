"""Print N free loopback TCP ports: free-ports.py N (used by the test scripts)."""
import random, socket, sys
# Ports below Linux's ephemeral range (32768-60999): a port the kernel picks
# (bind to 0) is one that outgoing connections, ours included, may take as
# their source port before the service binds it.
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randint(20000, 32767)))
    except OSError:
        s.close()
        continue
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
