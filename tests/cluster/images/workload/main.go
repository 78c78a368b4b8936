// Command workload is the test workload image: an HTTP server on :8080 that
// answers with its pod's name (and says so on stdout), and exits at once on
// SIGTERM, so a scale-down is over in seconds.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	server := &http.Server{Addr: ":8080", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hostname, _ := os.Hostname()
		fmt.Fprintln(w, hostname)
	})}
	go func() { <-ctx.Done(); _ = server.Shutdown(context.Background()) }()
	fmt.Println("serving on :8080")
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
