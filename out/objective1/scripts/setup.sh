#!/bin/sh
# bookstore 0.1.0: run by cloud-init on first boot; safe to re-run by hand.
# Secrets, containers, nginx (HTTP bootstrap site), CloudFormation signal, then the certificate.
set -eu
imds() {
    token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
    curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
# Signals the stack's CreationPolicy; the StackName tag is readable through IMDS (InstanceMetadataTags).
signal() {
    stack=$(imds tags/instance/StackName 2>/dev/null) || return 0
    aws cloudformation signal-resource --region "$(imds placement/region)" --stack-name "$stack" \
        --logical-resource-id Instance --unique-id "$(imds instance-id)" --status "$1" || true
}
on_exit() {
    rc=$?
    [ "$rc" -eq 0 ] || signal FAILURE
}
trap on_exit EXIT

# Session Manager and Run Command (README: Day two): Debian's images have no SSM agent; AWS
# publishes the Debian package in each region's bucket.
if ! systemctl is-active --quiet amazon-ssm-agent; then
    region=$(imds placement/region)
    curl -fsS -m 120 -o /run/amazon-ssm-agent.deb \
        "https://s3.$region.amazonaws.com/amazon-ssm-$region/latest/debian_$(dpkg --print-architecture)/amazon-ssm-agent.deb"
    dpkg -i /run/amazon-ssm-agent.deb
    rm -f /run/amazon-ssm-agent.deb
    systemctl enable --now amazon-ssm-agent
fi

install -d -m 0750 -o 10001 -g 10001 '/srv/bookstore/uploads'
/usr/local/sbin/bookstore-fetch-secrets
instance_id=$(imds instance-id)
printf 'BOOKSTORE_INSTANCE_ID=%s\n' "$instance_id" >/opt/bookstore/.env

systemctl enable --now docker
docker-compose -p bookstore -f /opt/bookstore/docker-compose.yml up -d --remove-orphans

# Until the certificate exists nginx serves only the ACME webroot (bootstrap site).
install -d -m 0755 /var/www/letsencrypt
rm -f /etc/nginx/sites-enabled/default
if [ ! -e /etc/nginx/sites-enabled/bookstore.conf ]; then
    ln -s /etc/nginx/sites-available/bookstore-bootstrap.conf /etc/nginx/sites-enabled/bookstore.conf
fi
nginx -t -q
systemctl enable nginx
systemctl reload-or-restart nginx

tries=0
until curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/readyz; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "the shop is not ready after 5 minutes: see docker-compose -p bookstore -f /opt/bookstore/docker-compose.yml logs" >&2
        exit 1
    fi
    sleep 5
done
echo "the shop is ready"
signal SUCCESS

systemctl enable --now certbot.timer
systemctl daemon-reload
systemctl enable --now bookstore-certificate.timer
