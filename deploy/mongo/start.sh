#!/bin/sh
# MongoDB's entrypoint, after making the key a replica set with access control needs: its members prove themselves to
# each other with it. This set has one member, so a fresh key at each start does; it never leaves the container.
set -eu
umask 077
head -c 756 /dev/urandom | base64 > /tmp/replica-key
chown mongodb:mongodb /tmp/replica-key
chmod 400 /tmp/replica-key
exec docker-entrypoint.sh "$@"
