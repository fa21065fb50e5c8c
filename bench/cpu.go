package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times:
// 100 on every architecture Go supports (reading it would take cgo).
const clockTick = 10 * time.Millisecond

// ProcessCPU returns the CPU time, user plus system, that process pid has
// used so far.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are counted
	// from after its closing parenthesis (field 3, state, comes first).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime (fields 14 and 15)
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// MachineCPU is what /proc/stat says all of the machine's CPUs did so far,
// summed across them.
type MachineCPU struct {
	// Idle is time no process ran (iowait included): a measurement that
	// shows idle time while its workers wait was not bound by the CPU.
	Idle time.Duration
	// Steal is time the hypervisor gave this VM's CPUs to someone else: a
	// measurement with steal ran on a slower machine than its neighbours.
	Steal time.Duration
	// Total is all of the CPUs' time, whatever it went to.
	Total time.Duration
}

// ReadMachineCPU reads the machine's idle, steal and total time from
// /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return parseMachineCPU(string(b))
}

// parseMachineCPU reads the first line of /proc/stat:
// cpu user nice system idle iowait irq softirq steal ...
func parseMachineCPU(stat string) (MachineCPU, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	var m MachineCPU
	for i, field := range f[1:] {
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: %v", err)
		}
		d := time.Duration(n) * clockTick
		m.Total += d
		switch i {
		case 3, 4: // idle, iowait
			m.Idle += d
		case 7:
			m.Steal = d
		}
	}
	return m, nil
}
