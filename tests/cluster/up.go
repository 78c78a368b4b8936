package main

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// components in start order; down stops them in reverse.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet"}

// controllers are the kube-controller-manager loops Tenure's behaviour
// depends on: namespace deletion that really completes, garbage collection
// of owned objects, PV/PVC binding and protection, service accounts and the
// root CA bundle every namespace gets, and aggregated RBAC roles; and those
// a node's pods need: workload controllers, quota usage (without it the
// quota admission refuses every pod of a namespace with a quota as "status
// unknown"), node health, and the cleanup of pods of deleted nodes.
var controllers = []string{
	"namespace-controller",
	"garbage-collector-controller",
	"persistentvolume-binder-controller",
	"persistentvolume-protection-controller",
	"persistentvolumeclaim-protection-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"resourcequota-controller",
	"endpointslice-controller",
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"pod-garbage-collector-controller",
}

type cluster struct {
	dir string
}

func (c cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.dir}, parts...)...)
}
func (c cluster) kubeconfig() string         { return c.path("kubeconfig") }
func (c cluster) pidFile(name string) string { return c.path(name + ".pid") }

// parseDir parses --dir and --timeout and returns the arguments after them.
func parseDir(name string, args []string) (cluster, time.Duration, []string, error) {
	flags := flag.NewFlagSet(name, flag.ExitOnError)
	dir := flags.String("dir", ".cache/cluster", "state directory (kubeconfig, PKI, etcd data, logs)")
	timeout := flags.Duration("timeout", 180*time.Second, "how long to wait for the control plane and node to become ready")
	if err := flags.Parse(args); err != nil {
		return cluster{}, 0, nil, err
	}
	abs, err := filepath.Abs(*dir)
	return cluster{dir: abs}, *timeout, flags.Args(), err
}

// up starts the control plane and its node unless they are already running and ready.
func up(args []string) error {
	c, timeout, _, err := parseDir("up", args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	if c.allRunning() && c.ready(ctx) == nil && c.nodeReady(ctx) == nil {
		fmt.Fprintln(os.Stderr, "control plane already running")
		fmt.Printf("export KUBECONFIG=%s\n", c.kubeconfig())
		return nil
	}
	if err := c.stop(); err != nil {
		return err
	}
	started := time.Now()
	if err := c.start(ctx); err != nil {
		_ = c.stopProcesses()
		return fmt.Errorf("%w (logs in %s)", err, c.dir)
	}
	fmt.Fprintf(os.Stderr, "control plane and node ready in %.1fs\n", time.Since(started).Seconds())
	fmt.Printf("export KUBECONFIG=%s\n", c.kubeconfig())
	return nil
}

// down stops every process up started, by pid, and removes the state.
func down(args []string) error {
	c, _, _, err := parseDir("down", args)
	if err != nil {
		return err
	}
	return c.stop()
}

// image puts an image on the node: image --dir DIR NAME ENTRYPOINT
// [PATH_IN_IMAGE=FILE...], e.g. image tenure.dev/tool:1 /tool /tool=bin/tool.
func image(args []string) error {
	c, _, rest, err := parseDir("image", args)
	if err != nil {
		return err
	}
	if len(rest) < 2 {
		return errors.New("usage: image --dir DIR NAME ENTRYPOINT [PATH_IN_IMAGE=FILE...]")
	}
	files := map[string]string{}
	for _, pair := range rest[2:] {
		target, source, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("%q: want PATH_IN_IMAGE=FILE", pair)
		}
		files[target] = source
	}
	return c.putImage(rest[0], files, []string{rest[1]})
}

// ctr runs containerd's ctr against the node: ctr --dir DIR ARGS...
func ctr(args []string) error {
	c, _, rest, err := parseDir("ctr", args)
	if err != nil {
		return err
	}
	out, err := c.ctr(rest...)
	if err == nil {
		_, err = os.Stdout.Write(out)
	}
	return err
}

func (c cluster) start(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(7)
	if err != nil {
		return err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])

	p, err := newPKI(c.path("pki"))
	if err != nil {
		return err
	}
	serving := []string{"127.0.0.1", "localhost", "10.0.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	steps := []error{
		p.issue("apiserver", pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, serving),
		p.issue("admin", pkix.Name{CommonName: "tenure-admin", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil),
		p.issue("controller-manager", pkix.Name{CommonName: "system:kube-controller-manager"}, x509.ExtKeyUsageClientAuth, nil),
		p.issue("scheduler", pkix.Name{CommonName: "system:kube-scheduler"}, x509.ExtKeyUsageClientAuth, nil),
		// The kubelet is a node, not an admin: the Node authorizer and
		// NodeRestriction limit it to its own node and the pods bound to it.
		p.issue("kubelet", pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}, x509.ExtKeyUsageClientAuth, nil),
		// The API server's identity towards the kubelet (logs, exec).
		p.issue("apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, x509.ExtKeyUsageClientAuth, nil),
		p.serviceAccountKey(),
	}
	if err := errors.Join(steps...); err != nil {
		return err
	}
	if err := writeKubeconfig(c.kubeconfig(), server, p, "admin"); err != nil {
		return err
	}
	cmKubeconfig := c.path("controller-manager.kubeconfig")
	if err := writeKubeconfig(cmKubeconfig, server, p, "controller-manager"); err != nil {
		return err
	}
	schedulerKubeconfig := c.path("scheduler.kubeconfig")
	if err := writeKubeconfig(schedulerKubeconfig, server, p, "scheduler"); err != nil {
		return err
	}

	if err := c.spawn("etcd",
		"--data-dir="+c.path("etcd"),
		"--listen-client-url="+etcdClient,
		"--listen-peer-url="+etcdPeer,
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", func() error { return httpOK(etcdClient + "/health") }); err != nil {
		return err
	}

	if err := c.spawn("kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Loopback cannot be published as the kubernetes Service endpoint; no pod needs it here.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+c.path("apiserver-certs"),
		"--tls-cert-file="+p.path("apiserver.crt"),
		"--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		// The node's IP, never its name: a name would be looked up in this machine's DNS.
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver", func() error { return c.readyz(ctx) }); err != nil {
		return err
	}

	if err := c.spawn("kube-controller-manager",
		"--kubeconfig="+cmKubeconfig,
		"--authentication-kubeconfig="+cmKubeconfig,
		"--authorization-kubeconfig="+cmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[3]),
		"--cert-dir="+c.path("controller-manager-certs"),
		"--controllers="+strings.Join(controllers, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p.path("sa.key"),
		"--root-ca-file="+p.path("ca.crt"),
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-controller-manager", func() error { return c.ready(ctx) }); err != nil {
		return err
	}

	if err := c.spawn("kube-scheduler",
		"--kubeconfig="+schedulerKubeconfig,
		"--authentication-kubeconfig="+schedulerKubeconfig,
		"--authorization-kubeconfig="+schedulerKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[4]),
		"--cert-dir="+c.path("scheduler-certs"),
		"--leader-elect=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	return c.startNode(ctx, server, p, ports[5:7])
}

// spawn starts a component as a detached child of this binary, logging to
// DIR/NAME.log and recording its pid in DIR/NAME.pid.
func (c cluster) spawn(name string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return c.spawnProgram(name, self, append([]string{name}, args...)...)
}

// spawnProgram starts a component that is a program of its own (containerd).
func (c cluster) spawnProgram(name, program string, args ...string) error {
	log, err := os.Create(c.path(name + ".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(program, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(c.pidFile(name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// pid returns the recorded pid of a component if that process is still the
// one we started: its command line names the component (as this binary's
// first argument or as the program) and this state directory, so a recycled
// pid is never signalled.
func (c cluster) pid(name string) (int, bool) {
	raw, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	argv := strings.Split(string(cmdline), "\x00")
	if len(argv) < 2 || (argv[1] != name && filepath.Base(argv[0]) != name) || !strings.Contains(string(cmdline), c.dir) {
		return 0, false
	}
	return pid, true
}

func (c cluster) allRunning() bool {
	for _, name := range components {
		if _, ok := c.pid(name); !ok {
			return false
		}
	}
	return true
}

// stop terminates the components, removes what the node set up on this
// machine and all state except the logs, which stay for post-mortems.
func (c cluster) stop() error {
	if err := c.stopProcesses(); err != nil {
		return err
	}
	if err := c.removeNodeLeftovers(); err != nil {
		return err
	}
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if !strings.HasSuffix(entry.Name(), ".log") {
			if err := os.RemoveAll(c.path(entry.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopProcesses terminates the components in reverse start order. Before
// containerd stops, the pods it runs are removed: containers and their
// network namespaces do not end with containerd.
func (c cluster) stopProcesses() error {
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		if pid, ok := c.pid(name); ok {
			if name == "containerd" {
				if err := c.removePods(); err != nil {
					fmt.Fprintln(os.Stderr, "tenure-cluster: removing pods:", err)
				}
			}
			terminate(pid)
		}
		if err := os.Remove(c.pidFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func terminate(pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func (c cluster) client() (*kubernetes.Clientset, error) {
	config, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		return nil, err
	}
	config.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(config)
}

func (c cluster) readyz(ctx context.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	_, err = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// ready means the API serves and the controller manager works: the
// serviceaccount controller has created the default ServiceAccount.
func (c cluster) ready(ctx context.Context) error {
	if err := c.readyz(ctx); err != nil {
		return err
	}
	client, err := c.client()
	if err != nil {
		return err
	}
	_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	return err
}

// waitFor polls check until it passes, failing at once if the component
// being waited for has exited.
func (c cluster) waitFor(ctx context.Context, component string, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		if _, alive := c.pid(component); !alive {
			return fmt.Errorf("%s exited: see %s", component, c.path(component+".log"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: %v", component, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func httpOK(url string) error {
	response, err := http.Get(url)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, response.Status)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer listener.Close()
		ports = append(ports, listener.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeKubeconfig(path, server string, p *pki, user string) error {
	read := func(name string) []byte {
		data, _ := os.ReadFile(p.path(name))
		return data
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["tenure"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: read("ca.crt")}
	config.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: read(user + ".crt"), ClientKeyData: read(user + ".key")}
	config.Contexts["tenure"] = &clientcmdapi.Context{Cluster: "tenure", AuthInfo: user}
	config.CurrentContext = "tenure"
	return clientcmd.WriteToFile(*config, path)
}
