#!/bin/sh
# bookstore 0.1.0: mounts the stack's encrypted data volume (MySQL's datadir and the
# covers) at /srv/bookstore. The volume's ID comes from SSM parameter /bookstore-production/data-volume (the stack
# writes it); the device is found by the ID in its NVMe serial. It is formatted only when blank
# (a volume restored from a snapshot keeps its data), and listed in /etc/fstab with nofail.
# Safe to re-run.
set -eu
mount_point=/srv/bookstore
if mountpoint -q "$mount_point"; then
    echo "$mount_point is mounted"
    exit 0
fi

tries=0
until volume=$(aws ssm get-parameter --region us-east-1 --name '/bookstore-production/data-volume' \
    --query Parameter.Value --output text) && [ -n "$volume" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "cannot read SSM parameter /bookstore-production/data-volume (the data volume's ID) after 10 minutes" >&2
        exit 1
    fi
    sleep 10
done

# Nitro: /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123... (the ID without its dash);
# Xen instance types: the attachment's device name, /dev/sdf as /dev/xvdf. CloudFormation attaches
# the volume once the instance runs: wait for it.
serial=$(printf '%s' "$volume" | tr -d -)
tries=0
dev=
while [ -z "$dev" ]; do
    for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$serial" /dev/xvdf; do
        if [ -b "$candidate" ]; then
            dev=$(readlink -f "$candidate")
            break
        fi
    done
    if [ -z "$dev" ]; then
        tries=$((tries + 1))
        if [ "$tries" -ge 90 ]; then
            echo "data volume $volume is not attached after 15 minutes: see the stack's events (DataVolumeAttachment)" >&2
            exit 1
        fi
        sleep 10
    fi
done

# blkid -p: 0 a filesystem, 2 nothing at all (a new volume); anything else is not "blank".
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
if [ "$rc" -eq 2 ]; then
    echo "formatting the new data volume $volume ($dev)"
    mkfs.ext4 -q -L bookstore-data "$dev"
elif [ "$rc" -ne 0 ]; then
    echo "blkid cannot read $dev ($volume, exit $rc): not formatting it" >&2
    exit 1
fi
uuid=$(blkid -s UUID -o value "$dev")
install -d -m 0755 "$mount_point"
if ! grep -q "^UUID=$uuid " /etc/fstab; then
    printf 'UUID=%s %s ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2\n' "$uuid" "$mount_point" >>/etc/fstab
fi
systemctl daemon-reload
mount "$mount_point"
install -d -m 0750 -o 10001 -g 10001 "$mount_point/uploads"
install -d -m 0750 "$mount_point/mysql"
echo "data volume $volume ($dev) mounted at $mount_point"
