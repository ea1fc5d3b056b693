package customize

import (
	"os"
	"path/filepath"
	"testing"

	"osim/controlplane/api"
)

func TestPartitionPathFollowsKernelNames(t *testing.T) {
	for disk, want := range map[string]string{"/dev/vda": "/dev/vda2", "/dev/sdb": "/dev/sdb2", "/dev/nvme0n1": "/dev/nvme0n1p2", "/dev/loop7": "/dev/loop7p2", "/dev/mmcblk0": "/dev/mmcblk0p2"} {
		if got := PartitionPath(disk, 2); got != want {
			t.Errorf("%s: %s, want %s", disk, got, want)
		}
	}
}

func TestSeedIsWrittenPrivate(t *testing.T) {
	root := t.TempDir()
	if err := WriteSeed(root, api.FirstBoot{MetaData: "instance-id: o1\nlocal-hostname: web1\n", UserData: "#cloud-config\n"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"meta-data": "instance-id: o1\nlocal-hostname: web1\n", "user-data": "#cloud-config\n"} {
		p := filepath.Join(root, SeedDir, name)
		b, err := os.ReadFile(p)
		st, _ := os.Stat(p)
		if err != nil || string(b) != want || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %q %v %v", name, b, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(filepath.Join(root, SeedDir)); st.Mode().Perm() != 0o755 {
		t.Errorf("seed dir mode %v", st.Mode())
	}
}
