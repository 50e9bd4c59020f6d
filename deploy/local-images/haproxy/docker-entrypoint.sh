#!/bin/sh
# Like the official haproxy image's entry point: options alone go to haproxy,
# which runs in master-worker mode (-W) without daemonizing (-db).
set -e
case "$1" in
  -*) set -- haproxy "$@" ;;
esac
if [ "$1" = "haproxy" ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
