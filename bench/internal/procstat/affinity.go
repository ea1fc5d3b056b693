package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pin restricts every thread of pid's tree to cpus (all CPUs when cpus is
// empty). Threads and processes created later inherit the mask from their
// creator, so a forking or threading server stays inside it.
func Pin(pid int, cpus ...int) error {
	var err error
	for _, p := range Tree(pid) {
		if e := pinTasks(p, cpus); e != nil && err == nil && p == pid {
			err = e
		}
	}
	return err
}

// PinSelf does the same for this process (all its threads).
func PinSelf(cpus ...int) error { return pinTasks(os.Getpid(), cpus) }

func pinTasks(pid int, cpus []int) error {
	var set unix.CPUSet
	if len(cpus) == 0 {
		for c := 0; c < runtime.NumCPU(); c++ {
			set.Set(c)
		}
	}
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("procstat: tasks of %d: %v", pid, err)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(filepath.Base(t))
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("procstat: pin task %d of %d to %v: %w", tid, pid, cpus, err)
		}
	}
	return nil
}
