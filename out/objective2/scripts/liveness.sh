#!/bin/sh
# bookstore 0.1.0: liveness decides replacement (the group's HealthCheckType is EC2).
# Every 30 s (bookstore-liveness.timer, started once the instance is InService): GET /healthz through
# nginx, which needs no database. After 4 failures in a row the instance asks the group to replace it
# (SetInstanceHealth); if even that fails (Docker itself is down), it powers off and EC2's check does.
set -eu
# shellcheck source=/dev/null
. /etc/bookstore/stack.env
state=/run/bookstore-liveness
if curl -fsS -m 5 -o /dev/null http://127.0.0.1/healthz; then
    echo 0 >"$state"
    exit 0
fi
failed=$(($(cat "$state" 2>/dev/null || echo 0) + 1))
echo "$failed" >"$state"
echo "/healthz failed ($failed in a row; replaced at 4)" >&2
[ "$failed" -ge 4 ] || exit 0
token=$(curl -fsS -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
instance_id=$(curl -fsS -m 5 -H "X-aws-ec2-metadata-token: $token" http://169.254.169.254/latest/meta-data/instance-id)
if docker run --rm --network host -e AWS_REGION="$AWS_REGION" public.ecr.aws/aws-cli/aws-cli:2.27.26 \
    autoscaling set-instance-health --instance-id "$instance_id" --health-status Unhealthy \
    --no-should-respect-grace-period; then
    echo "marked $instance_id Unhealthy: the group replaces it" >&2
else
    echo "cannot reach the auto-scaling API: powering off (EC2's health check replaces a stopped instance)" >&2
    systemctl poweroff
fi
