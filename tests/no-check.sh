#!/bin/sh
echo "The Check framework was not found at configure time: install 'check' (Debian: apt-get install check) and re-run configure." >&2
exit 1
