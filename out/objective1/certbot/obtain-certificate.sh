#!/bin/sh
# bookstore 0.1.0: first certificate (webroot), then the TLS site; run every 5 minutes until it succeeds.
set -eu
domain='shop.example.com'
webroot=/var/www/letsencrypt
install -d -m 0755 "$webroot"
fail() {
    echo "bookstore-obtain-certificate: $*; retrying in 5 minutes (the site says \"waiting for the TLS certificate\")" >&2
    exit 1
}

if [ ! -s "/etc/letsencrypt/live/$domain/fullchain.pem" ]; then
    # Spare the CA's failed-validation limit: ask only once DNS points here.
    if ! token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) ||
        ! ip=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/public-ipv4); then
        fail "no public IPv4 address in the instance metadata (IMDSv2) yet"
    fi
    resolved=$(getent ahostsv4 "$domain" | awk '{ print $1 }' | sort -u | paste -sd ' ' -)
    case " $resolved " in
        *" $ip "*) ;;
        *) fail "$domain resolves to ${resolved:-no address}, not to this instance ($ip): point its A record at $ip" \
            "(output PublicIp) and remove any other" ;;
    esac
    certbot certonly --non-interactive --agree-tos --no-eff-email --server 'https://acme-v02.api.letsencrypt.org/directory' \
        --webroot -w "$webroot" -d "$domain" --email 'ops@example.com' --keep-until-expiring ||
        fail "certbot failed (reason above; log: /var/log/letsencrypt/): the CA fetches" \
            "http://$domain/.well-known/acme-challenge/ on port 80, so keep 0.0.0.0/0 in objective1.allowed_cidrs"
fi

# RFC 7919 ffdhe2048 group for the DHE suites of the Mozilla intermediate profile.
if [ ! -s /etc/nginx/ffdhe2048.pem ]; then
    openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out /etc/nginx/ffdhe2048.pem
fi
ln -sfn /etc/nginx/sites-available/bookstore.conf /etc/nginx/sites-enabled/bookstore.conf
if ! nginx -t -q; then
    ln -sfn /etc/nginx/sites-available/bookstore-bootstrap.conf /etc/nginx/sites-enabled/bookstore.conf
    fail "nginx -t rejects /etc/nginx/sites-available/bookstore.conf (reason above)"
fi
systemctl reload nginx
systemctl disable --now bookstore-certificate.timer 2>/dev/null || true
echo "nginx serves https://$domain"
