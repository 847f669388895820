// Command pause is the pod sandbox's process, as Kubernetes' build/pause/linux/pause.c:
// it holds the pod's namespaces, reaps the zombies of a shared process namespace,
// and exits on SIGINT or SIGTERM. No registry serves registry.k8s.io/pause here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("pause: warning: not pid 1\n")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Stderr.WriteString("pause: shutting down, got signal\n")
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
