#!/usr/bin/env bash
# `make run` until the manager exists: osim-bootd serve on loopback with a
# demo config (DHCP on high ports so no root is needed), a demo target whose
# iPXE script, kernel and initrd you can fetch, and the commands to do it.
# For real firmware booting through it, see bench/lab/boot-guests.sh (root).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
demo="$repo/bin/demo"
mkdir -p "$demo/tftp" "$demo/files/demo"
nbp=/usr/lib/ipxe/undionly.kpxe
if [ -f "$nbp" ]; then cp "$nbp" /usr/lib/ipxe/snponly.efi "$demo/tftp/" 2>/dev/null || true; fi
[ -f "$demo/tftp/undionly.kpxe" ] || head -c 70000 /dev/urandom > "$demo/tftp/undionly.kpxe"
[ -f "$demo/tftp/snponly.efi" ] || head -c 180000 /dev/urandom > "$demo/tftp/snponly.efi"
[ -f "$demo/files/demo/vmlinuz" ] || head -c 8388608 /dev/urandom > "$demo/files/demo/vmlinuz"
[ -f "$demo/files/demo/initrd.gz" ] || head -c 4194304 /dev/urandom > "$demo/files/demo/initrd.gz"
cat > "$demo/serve.yaml" <<CFG
address: 127.0.0.1
metrics_listen: 127.0.0.1:9169
dhcp: {mode: proxy, listen: 127.0.0.1:10067, boot_listen: 127.0.0.1:14011}
tftp: {root: $demo/tftp, listen: 127.0.0.1:6969}
http: {files: $demo/files, listen: 127.0.0.1:8080}
images:
  demo: {kernel: demo/vmlinuz, initrds: [demo/initrd.gz], cmdline: "console=ttyS0 osim.status={{.StatusURL}} osim.token={{.Token}}"}
targets:
  - {mac: "52:54:00:00:00:01", image: demo, order: demo-1, token: demo-token}
  - {mac: "52:54:00:00:00:02", action: local}
CFG
cat <<MSG
osim-bootd serve (demo, loopback only; Ctrl-C stops). Try:
  curl http://127.0.0.1:8080/ipxe/52-54-00-00-00-01                  # the target's iPXE script
  curl -r 0-99 -o /dev/null -w '%{http_code} %{size_download}\n' http://127.0.0.1:8080/files/demo/vmlinuz
  tftp 127.0.0.1 6969 -m binary -c get undionly.kpxe /tmp/undionly.kpxe
  atftp --option 'blksize 1468' --option 'windowsize 16' -g -r snponly.efi -l /tmp/snponly.efi 127.0.0.1 6969
  curl --oauth2-bearer demo-token --json '{"phase":"installing","progress":10}' http://127.0.0.1:8080/status/demo-1
  curl -s http://127.0.0.1:9169/metrics | grep ^osim_
Real firmware through the same server: sudo bash bench/lab/boot-guests.sh (QEMU, about a minute)
MSG
exec "$repo/bin/osim-bootd" serve --config "$demo/serve.yaml"
