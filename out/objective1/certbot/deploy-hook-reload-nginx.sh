#!/bin/sh
# bookstore 0.1.0: run by certbot after each renewal; old workers finish their requests.
set -eu
nginx -t -q || { echo "reload-nginx: nginx -t failed (above); the old certificate stays in use" >&2; exit 1; }
systemctl reload nginx
