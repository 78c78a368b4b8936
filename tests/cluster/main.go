// Command tenure-cluster is a real, single-machine Kubernetes control plane
// built from the official Kubernetes Go modules, for Tenure's e2e tests and
// demo on machines without Docker.
//
// One multi-call binary: "etcd", "kube-apiserver", "kube-controller-manager",
// "kube-scheduler" and "kubelet" run one component each (as separate
// processes), while "up" and "down" start and stop the whole control plane and
// its node (with Debian's containerd) under a state directory, "image" puts an
// image on the node and "ctr" asks the node's containerd. Invoked through a link named "kubectl" it is kubectl of the same
// release.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if filepath.Base(os.Args[0]) == "kubectl" {
		runKubectl()
		return
	}
	if len(os.Args) < 2 {
		usage()
	}
	command, args := os.Args[1], os.Args[2:]
	var err error
	switch command {
	case "etcd":
		err = runEtcd(args)
	case "kube-apiserver":
		os.Exit(runAPIServer(args))
	case "kube-controller-manager":
		os.Exit(runControllerManager(args))
	case "kube-scheduler":
		os.Exit(runScheduler(args))
	case "kubelet":
		os.Exit(runKubelet(args))
	case "up":
		err = up(args)
	case "down":
		err = down(args)
	case "image":
		err = image(args)
	case "ctr":
		err = ctr(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tenure-cluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tenure-cluster up|down|image|ctr --dir DIR | etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet [flags]")
	os.Exit(2)
}
