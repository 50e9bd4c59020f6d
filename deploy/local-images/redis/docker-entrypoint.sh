#!/bin/sh
# Like the official redis image's entry point: options alone go to
# redis-server; redis-server runs as the redis user and owns /data.
set -e
case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = "redis-server" ]; then
  shift
  # Debian's build keeps protected mode on; the official image turns it off
  # (the container's network is the boundary), so do the same.
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = "0" ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
