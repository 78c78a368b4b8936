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
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// controllers are the kube-controller-manager loops Tenure's behaviour
// depends on: namespace deletion that really completes, garbage collection
// of owned objects, PV/PVC binding and protection, service accounts and the
// root CA bundle every namespace gets, and aggregated RBAC roles.
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
}

type cluster struct {
	dir string
}

func (c cluster) path(parts ...string) string {
	return filepath.Join(append([]string{c.dir}, parts...)...)
}
func (c cluster) kubeconfig() string         { return c.path("kubeconfig") }
func (c cluster) pidFile(name string) string { return c.path(name + ".pid") }

func parseDir(name string, args []string) (cluster, time.Duration, error) {
	flags := flag.NewFlagSet(name, flag.ExitOnError)
	dir := flags.String("dir", ".cache/cluster", "state directory (kubeconfig, PKI, etcd data, logs)")
	timeout := flags.Duration("timeout", 90*time.Second, "how long to wait for the control plane to become ready")
	if err := flags.Parse(args); err != nil {
		return cluster{}, 0, err
	}
	abs, err := filepath.Abs(*dir)
	return cluster{dir: abs}, *timeout, err
}

// up starts the control plane unless it is already running and ready.
func up(args []string) error {
	c, timeout, err := parseDir("up", args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	if c.allRunning() && c.ready(ctx) == nil {
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
	fmt.Fprintf(os.Stderr, "control plane ready in %.1fs\n", time.Since(started).Seconds())
	fmt.Printf("export KUBECONFIG=%s\n", c.kubeconfig())
	return nil
}

// down stops every process up started, by pid, and removes the state.
func down(args []string) error {
	c, _, err := parseDir("down", args)
	if err != nil {
		return err
	}
	return c.stop()
}

func (c cluster) start(ctx context.Context) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(4)
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
		"--authorization-mode=RBAC",
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
	return c.waitFor(ctx, "kube-controller-manager", func() error { return c.ready(ctx) })
}

// spawn starts a component as a detached child of this binary, logging to
// DIR/NAME.log and recording its pid in DIR/NAME.pid.
func (c cluster) spawn(name string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log, err := os.Create(c.path(name + ".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(self, append([]string{name}, args...)...)
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
// one we started: its command line names the component and this state
// directory, so a recycled pid is never signalled.
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
	if len(argv) < 2 || argv[1] != name || !strings.Contains(string(cmdline), c.dir) {
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

// stop terminates the components and removes all state except the logs,
// which stay for post-mortems.
func (c cluster) stop() error {
	if err := c.stopProcesses(); err != nil {
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

// stopProcesses terminates the components in reverse start order.
func (c cluster) stopProcesses() error {
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		if pid, ok := c.pid(name); ok {
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
