#!/bin/sh
# bookstore 0.1.0: run by cloud-init on first boot; safe to re-run by hand.
# Data volume, secrets, containers (bookstore-upgrade), nginx (HTTP bootstrap site), CloudFormation
# signal, then the certificate.
set -eu
imds() {
    token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
    curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
AWS_REGION=$(imds placement/region)
AWS_DEFAULT_REGION=$AWS_REGION
export AWS_REGION AWS_DEFAULT_REGION
instance_id=$(imds instance-id)
# The StackName tag is readable through IMDS (InstanceMetadataTags); the stack's log group is named after it.
stack=$(imds tags/instance/StackName 2>/dev/null || true)
LOG_GROUP="/$stack/vm"
# ship_boot_log: this boot's cloud-init output to the stack's log group (stream INSTANCE/cloud-init),
# so that a boot can be read without a shell on the instance, or after it is gone.
ship_boot_log() {
    events=$(tail -c 200000 /var/log/cloud-init-output.log | python3 -c '
import json, sys, time
now = int(time.time() * 1000)
print(json.dumps([{"timestamp": now, "message": l.rstrip()[:8000] or " "} for l in sys.stdin]))')
    aws logs create-log-stream --log-group-name "$LOG_GROUP" --log-stream-name "$instance_id/cloud-init" >/dev/null 2>&1 || true
    aws logs put-log-events --log-group-name "$LOG_GROUP" --log-stream-name "$instance_id/cloud-init" \
        --log-events "$events" >/dev/null 2>&1 || echo "could not ship the boot log to $LOG_GROUP" >&2
}
# Signals the stack's ShopReady wait condition, once per VM. CloudFormation creates it when the
# data volume is attached: retried for 5 minutes.
signal() {
    [ -n "$stack" ] && [ ! -e /var/lib/bookstore-signalled ] || return 0
    tries=0
    until aws cloudformation signal-resource --stack-name "$stack" --logical-resource-id ShopReady \
        --unique-id "$instance_id" --status "$1"; do
        tries=$((tries + 1))
        [ "$tries" -lt 30 ] || return 0
        sleep 10
    done
    touch /var/lib/bookstore-signalled
}
on_exit() {
    rc=$?
    if [ "$rc" -ne 0 ]; then
        ship_boot_log
        signal FAILURE
    fi
}
trap on_exit EXIT
# `aws` (/usr/local/bin/aws) is a container: Docker first.
systemctl enable --now docker

# Session Manager and Run Command (README: Day two): Debian's images have no SSM agent; AWS
# publishes the Debian package in each region's bucket. Canonical's Ubuntu images run it as a
# snap: never a second agent beside it.
if ! systemctl is-active --quiet amazon-ssm-agent && ! snap list amazon-ssm-agent >/dev/null 2>&1; then
    curl -fsS -m 120 -o /run/amazon-ssm-agent.deb \
        "https://s3.$AWS_REGION.amazonaws.com/amazon-ssm-$AWS_REGION/latest/debian_$(dpkg --print-architecture)/amazon-ssm-agent.deb"
    dpkg -i /run/amazon-ssm-agent.deb
    rm -f /run/amazon-ssm-agent.deb
    systemctl enable --now amazon-ssm-agent
fi

/usr/local/sbin/bookstore-mount-data
/usr/local/sbin/bookstore-fetch-secrets
# The compose file's variables: the instance (X-Bookstore-Instance) and the log group (awslogs).
# bookstore-upgrade adds BOOKSTORE_APP_IMAGE.
tmp=$(mktemp /opt/bookstore/.env.XXXXXX)
grep -v -e '^BOOKSTORE_INSTANCE_ID=' -e '^LOG_GROUP=' -e '^AWS_REGION=' /opt/bookstore/.env >"$tmp" 2>/dev/null || true
printf 'BOOKSTORE_INSTANCE_ID=%s\nLOG_GROUP=%s\nAWS_REGION=%s\n' "$instance_id" "$LOG_GROUP" "$AWS_REGION" >>"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" /opt/bookstore/.env

# The app image from SSM (not from the user-data), pulled and started; waits for /readyz.
/usr/local/sbin/bookstore-upgrade

# Until the certificate exists nginx serves only the ACME webroot (bootstrap site).
install -d -m 0755 /var/www/letsencrypt
rm -f /etc/nginx/sites-enabled/default
if [ ! -e /etc/nginx/sites-enabled/bookstore.conf ]; then
    ln -s /etc/nginx/sites-available/bookstore-bootstrap.conf /etc/nginx/sites-enabled/bookstore.conf
fi
nginx -t -q
systemctl enable nginx
systemctl reload-or-restart nginx

signal SUCCESS

systemctl enable --now certbot.timer
systemctl daemon-reload
systemctl enable --now bookstore-certificate.timer
ship_boot_log
