#!/bin/sh
set -eu
name=${1:-world}
printf 'hello %s\n' "$name"
