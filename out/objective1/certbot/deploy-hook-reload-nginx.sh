#!/bin/sh
# bookstore 0.1.0: certbot runs this after every renewal (certbot.timer):
# check the config, then reload nginx with the new certificate.
set -eu
nginx -t -q && systemctl reload nginx
