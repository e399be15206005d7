#!/bin/sh
# the official image runs redis-server with protected mode off
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
