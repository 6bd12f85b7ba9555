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
on_exit() {
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "bookstore-boot failed ($rc): abandoning the launch, the group replaces this instance" >&2
        report ABANDON FAILURE
    fi
}
trap on_exit EXIT

systemctl enable --now docker

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

umask 022
printf 'BOOKSTORE_INSTANCE_ID=%s\nBOOKSTORE_DATABASE_URL=mysql://%s@%s:%s/%s\n' \
    "$instance_id" 'bookstore' "$DB_HOST" '3306' 'bookstore' \
    >/etc/bookstore/runtime.env

systemctl daemon-reload
systemctl enable --now bookstore.service bookstore-refresh-secrets.timer

tries=0
until curl -fsS -m 5 -o /dev/null http://127.0.0.1/readyz; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "the shop is not ready after 10 minutes: docker-compose -p bookstore logs app" >&2
        exit 1
    fi
    sleep 10
done
echo "the shop is ready on $instance_id"
report CONTINUE SUCCESS
