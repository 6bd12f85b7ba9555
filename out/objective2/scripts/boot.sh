#!/bin/sh
# bookstore 0.1.0: first boot of every instance (cloud-init); safe to re-run.
set -eu
# shellcheck source=/dev/null
. /etc/bookstore/stack.env
imds() {
    token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
    curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
aws() {
    docker run --rm --network host -e AWS_REGION="$AWS_REGION" public.ecr.aws/aws-cli/aws-cli:2.27.26 "$@"
}
instance_id=$(imds instance-id)

# report RESULT STATUS: the launch lifecycle hook, and CloudFormation during a create or update.
report() {
    aws autoscaling complete-lifecycle-action --auto-scaling-group-name "$ASG_NAME" \
        --lifecycle-hook-name "$LIFECYCLE_HOOK" --instance-id "$instance_id" \
        --lifecycle-action-result "$1" >/dev/null 2>&1 || true
    aws cloudformation signal-resource --stack-name "$STACK_NAME" --logical-resource-id AutoScalingGroup \
        --unique-id "$instance_id" --status "$2" >/dev/null 2>&1 || true
}
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
on_exit() {
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "bookstore-boot failed ($rc): abandoning the launch, the group replaces this instance" >&2
        ship_boot_log
        report ABANDON FAILURE
    fi
}
trap on_exit EXIT

systemctl enable --now docker

# Session Manager and Run Command: Debian's images have no SSM agent; AWS publishes the Debian
# package in each region's bucket (https, the instance role registers it). Canonical's Ubuntu images
# run it as a snap: never a second agent beside it.
if ! systemctl is-active --quiet amazon-ssm-agent && ! snap list amazon-ssm-agent >/dev/null 2>&1; then
    arch=$(dpkg --print-architecture)
    curl -fsS -m 120 -o /run/amazon-ssm-agent.deb \
        "https://s3.$AWS_REGION.amazonaws.com/amazon-ssm-$AWS_REGION/latest/debian_$arch/amazon-ssm-agent.deb"
    dpkg -i /run/amazon-ssm-agent.deb
    rm -f /run/amazon-ssm-agent.deb
    systemctl enable --now amazon-ssm-agent
fi

# EFS with TLS as efs-utils does it (not packaged for Debian): stunnel, then NFS 4.1 through it.
nfs_opts=nfsvers=4.1,port=20049,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport
systemctl daemon-reload
systemctl enable --now bookstore-efs-tunnel.service
install -d -m 0755 '/srv/bookstore/uploads'
if ! mountpoint -q '/srv/bookstore/uploads'; then
    # /uploads (the access point's directory), once: uid 10001 writes, nginx reads.
    root=/run/bookstore-efs-root
    install -d -m 0700 "$root"
    tries=0
    until mount -t nfs4 -o "$nfs_opts" 127.0.0.1:/ "$root"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 30 ]; then
            echo "cannot mount $EFS_HOST through the TLS tunnel" >&2
            exit 1
        fi
        sleep 10
    done
    install -d -m 0755 -o 10001 -g 10001 "$root/uploads"
    umount "$root"
    if ! grep -q ' /srv/bookstore/uploads nfs4 ' /etc/fstab; then
        echo "127.0.0.1:/uploads /srv/bookstore/uploads nfs4 $nfs_opts,_netdev,x-systemd.requires=bookstore-efs-tunnel.service 0 0" >>/etc/fstab
    fi
    systemctl daemon-reload
    mount '/srv/bookstore/uploads'
fi

/usr/local/sbin/bookstore-fetch-secrets
# The RDS certificate authorities of this region (AWS's trust store), for TLS to the database.
curl -fsS -m 60 -o /etc/bookstore/rds-ca.pem.new \
    "https://truststore.pki.rds.amazonaws.com/$AWS_REGION/$AWS_REGION-bundle.pem"
chmod 0644 /etc/bookstore/rds-ca.pem.new
mv -f /etc/bookstore/rds-ca.pem.new /etc/bookstore/rds-ca.pem

# The shop's own least-privilege user (bookstore_shop, its password in the stack's
# AppDatabaseSecret), made or re-synced with RDS's master secret, which only this step reads: RDS
# rotating the master password every 7 days then never touches the shop's logins.
master=$(mktemp -d /run/bookstore-master.XXXXXX)
aws secretsmanager get-secret-value --secret-id "$DB_SECRET_ARN" --query SecretString --output text |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["password"])' >"$master/password"
chown -R 10001:10001 "$master"
docker run --rm --network host -v "$master:/run/master:ro" \
    -v /etc/bookstore/secrets/database_password:/run/secrets/database_password:ro \
    -v /etc/bookstore/rds-ca.pem:/etc/ssl/rds/ca.pem:ro \
    -e BOOKSTORE_DATABASE_TLS=verify -e BOOKSTORE_DATABASE_CA_FILE=/etc/ssl/rds/ca.pem \
    -e BOOKSTORE_DATABASE_URL="mysql://bookstore@$DB_HOST:3306/bookstore" \
    -e BOOKSTORE_DATABASE_PASSWORD_FILE=/run/master/password "ghcr.io/bookstore-rs/bookstore-app:0.1.0" \
    create-app-user --user 'bookstore_shop' --password-file /run/secrets/database_password
rm -rf "$master"

umask 022
# pool_max: 6 instances x 9 connections fit in db.t4g.micro's max_connections.
printf 'BOOKSTORE_INSTANCE_ID=%s\nBOOKSTORE_DATABASE_URL=mysql://%s@%s:%s/%s?pool_min=0&pool_max=9\n' \
    "$instance_id" 'bookstore_shop' "$DB_HOST" '3306' 'bookstore' \
    >/etc/bookstore/runtime.env

systemctl daemon-reload
systemctl enable --now bookstore.service bookstore-refresh-secrets.timer

tries=0
until curl -fsS -m 5 -o /dev/null http://127.0.0.1/readyz; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "the shop is not ready after 10 minutes: docker compose -p bookstore logs app" >&2
        exit 1
    fi
    sleep 10
done
echo "the shop is ready on $instance_id"
ship_boot_log
report CONTINUE SUCCESS
# From now on liveness (/healthz), not readiness, decides whether this instance is replaced.
systemctl enable --now bookstore-liveness.timer
