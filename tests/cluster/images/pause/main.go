// Command pause holds a pod's namespaces open, like Kubernetes' own pause
// image: it sleeps until told to stop. Built static, it is the whole image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	// As PID 1 a process only gets the signals it handles.
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
