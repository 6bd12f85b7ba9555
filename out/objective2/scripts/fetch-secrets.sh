#!/bin/sh
# bookstore 0.1.0: the shop's secrets (RDS-managed secret, SSM) into files for *_FILE.
# Never prints a value. The shop re-reads database_password itself when a login is refused;
# --restart-on-change (timer) restarts it only when another secret changed.
set -eu
# shellcheck source=/dev/null
. /etc/bookstore/stack.env
dir=/etc/bookstore/secrets
umask 077
install -d -m 0700 -o root -g root "$dir"
changed=0

# The AWS CLI in a container; host network: IMDSv2 within one hop.
aws() {
    docker run --rm --network host -e AWS_REGION="$AWS_REGION" public.ecr.aws/aws-cli/aws-cli:2.27.26 "$@"
}

retry() {
    tries=0
    until "$@"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            echo "giving up after 5 tries: $1 $2 $3" >&2
            return 1
        fi
        sleep 10
    done
}

# store NAME VALUE: atomically, for uid 10001, when it changed.
store() {
    if [ -f "$dir/$1" ] && [ "$(cat "$dir/$1")" = "$2" ]; then
        return 0
    fi
    if [ -f "$dir/$1" ] && [ "$1" = database_password ]; then
        # In place, not renamed over: the container's file mount keeps the inode, and the shop
        # re-reads this file when the database refuses its login (no restart).
        printf '%s' "$2" >"$dir/$1"
        echo "updated $dir/$1 (the shop re-reads it)"
        return 0
    fi
    tmp=$(mktemp "$dir/.$1.XXXXXX")
    printf '%s' "$2" >"$tmp"
    chown 10001:10001 "$tmp"
    chmod 0400 "$tmp"
    mv -f "$tmp" "$dir/$1"
    changed=1
    echo "updated $dir/$1"
}

secret=$(retry aws secretsmanager get-secret-value --secret-id "$APP_DB_SECRET_ARN" \
    --query SecretString --output text)
value=$(printf '%s' "$secret" | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["password"])')
store database_password "$value"
value=$(retry aws ssm get-parameter --with-decryption --name '/bookstore/secret-key' \
    --query Parameter.Value --output text)
store secret_key "$value"
value=$(retry aws ssm get-parameter --with-decryption --name '/bookstore/admin-password' \
    --query Parameter.Value --output text)
store admin_password "$value"

if [ "$changed" -eq 1 ] && [ "$#" -gt 0 ] && [ "$1" = --restart-on-change ]; then
    echo "a secret changed: restarting the shop (it drains first)"
    docker compose -p bookstore -f /opt/bookstore/docker-compose.yml restart app
fi
