#!/bin/sh
# osim test OS: find the root labelled osimroot, read its cloud-init
# NoCloud seed and print one marker line on the console, then power off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
release=$(uname -r)
while read -r m; do
	insmod "/lib/modules/$release/$m" 2>/dev/null
done </etc/osim/modules
dev=
i=0
while [ $i -lt 100 ]; do
	dev=$(findfs LABEL=osimroot 2>/dev/null) && [ -n "$dev" ] && break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$dev" ] || ! mount -o ro -t ext4 "$dev" /mnt; then
	echo "OSIM-ERROR root=missing"
	poweroff -f
fi
seed=/mnt/var/lib/cloud/seed/nocloud
if [ -f $seed/meta-data ] && [ -f $seed/user-data ]; then
	h=$(sed -n 's/^local-hostname:[[:space:]]*//p' $seed/meta-data | head -n 1 | tr -d "\"'\r")
	k=$(awk '/^[[:space:]]*ssh_authorized_keys:/ { f = 1; next }
		f && /^[[:space:]]*-/ { sub(/^[[:space:]]*-[[:space:]]*/, ""); gsub(/^["'"'"']|["'"'"']$/, ""); print; exit }
		f && !/^[[:space:]]*$/ { f = 0 }' $seed/user-data)
	echo "OSIM-INSTALLED hostname=${h:-?} ssh_key=${k:-?}"
else
	echo "OSIM-INSTALLED hostname=? seed=missing"
fi
umount /mnt
poweroff -f
