#!/bin/sh
# bookstore 0.1.0: runs the app image that SSM parameter /bookstore-production/app-image names (the stack
# sets it from app.image and app.tag, so an upgrade never changes the user-data or the VM): writes it
# to /opt/bookstore/.env, pulls it, (re)starts the containers and waits for /readyz; back on the
# previous image when the new one is not ready in 5 minutes. Run by bookstore-setup at boot and by
# the stack's upgrade document (README: Day two). Safe to re-run.
set -eu
env_file=/opt/bookstore/.env
compose="docker compose -p bookstore -f /opt/bookstore/docker-compose.yml"

tries=0
until image=$(aws ssm get-parameter --region us-east-1 --name '/bookstore-production/app-image' \
    --query Parameter.Value --output text) && [ -n "$image" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "cannot read SSM parameter /bookstore-production/app-image (the app image) after 5 minutes" >&2
        exit 1
    fi
    sleep 10
done
previous=$(sed -n 's/^BOOKSTORE_APP_IMAGE=//p' "$env_file" 2>/dev/null || true)

set_image() {
    tmp=$(mktemp /opt/bookstore/.env.XXXXXX)
    grep -v '^BOOKSTORE_APP_IMAGE=' "$env_file" >"$tmp" 2>/dev/null || true
    printf 'BOOKSTORE_APP_IMAGE=%s\n' "$1" >>"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$env_file"
}
ready() {
    tries=0
    until curl -fsS -m 5 -o /dev/null http://127.0.0.1:8080/readyz; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || return 1
        sleep 5
    done
}

echo "app image: ${previous:-none} -> $image"
set_image "$image"
if $compose pull app && $compose up -d --remove-orphans && ready; then
    echo "the shop is ready on $image"
    exit 0
fi
echo "$image is not ready after 5 minutes: see $compose logs app" >&2
if [ -n "$previous" ] && [ "$previous" != "$image" ]; then
    set_image "$previous"
    $compose up -d app && ready && echo "back on $previous" >&2
fi
exit 1
