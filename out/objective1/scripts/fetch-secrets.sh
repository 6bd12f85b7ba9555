#!/bin/sh
# bookstore 0.1.0: reads the shop's secrets from SSM Parameter Store (instance role)
# into /etc/bookstore/secrets for docker compose. Never prints a value. Safe to re-run.
set -eu
dir=/etc/bookstore/secrets
umask 077
install -d -m 0700 -o root -g root "$dir"

# fetch FILE PARAMETER OWNER
fetch() {
    tries=0
    until value=$(aws ssm get-parameter --with-decryption --name "$2" \
        --query Parameter.Value --output text --region us-east-1); do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            echo "cannot read SSM parameter $2: create it (see README.md) and re-run" >&2
            return 1
        fi
        sleep 10
    done
    tmp=$(mktemp "$dir/.$1.XXXXXX")
    printf '%s' "$value" >"$tmp"
    chown "$3" "$tmp"
    chmod 0400 "$tmp"
    mv -f "$tmp" "$dir/$1"
    echo "wrote $dir/$1 from $2"
}

# The app container runs as uid 10001; MySQL's entrypoint reads its files as root.
fetch database_password '/bookstore/database-password' 10001:10001
fetch secret_key '/bookstore/secret-key' 10001:10001
fetch admin_password '/bookstore/admin-password' 10001:10001
fetch database_root_password '/bookstore/database-root-password' root:root
