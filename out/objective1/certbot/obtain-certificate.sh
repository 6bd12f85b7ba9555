#!/bin/sh
# bookstore 0.1.0: obtains the first Let's Encrypt certificate for shop.example.com (webroot,
# served by the bootstrap site) and switches nginx to the full TLS site. Idempotent; bookstore-certificate.timer
# retries it every 5 minutes until it succeeds, then disables itself. Renewal: certbot.timer.
set -eu
domain='shop.example.com'
webroot=/var/www/letsencrypt
install -d -m 0755 "$webroot"

if [ ! -s "/etc/letsencrypt/live/$domain/fullchain.pem" ]; then
    # Spare Let's Encrypt's failed-validation limit: wait until DNS points at this instance.
    token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
    ip=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/public-ipv4)
    if ! getent ahostsv4 "$domain" | grep -q "^$ip "; then
        echo "$domain does not resolve to this instance ($ip) yet: point its A record here" >&2
        exit 1
    fi
    certbot certonly --non-interactive --agree-tos --no-eff-email  \
        --webroot -w "$webroot" -d "$domain" --email 'ops@example.com' --keep-until-expiring
fi

# RFC 7919 ffdhe2048 group for the DHE suites of the Mozilla intermediate profile.
if [ ! -s /etc/nginx/ffdhe2048.pem ]; then
    openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out /etc/nginx/ffdhe2048.pem
fi
ln -sfn /etc/nginx/sites-available/bookstore.conf /etc/nginx/sites-enabled/bookstore.conf
if ! nginx -t -q; then
    ln -sfn /etc/nginx/sites-available/bookstore-bootstrap.conf /etc/nginx/sites-enabled/bookstore.conf
    exit 1
fi
systemctl reload nginx
systemctl disable --now bookstore-certificate.timer 2>/dev/null || true
echo "nginx serves https://$domain"
