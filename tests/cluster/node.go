package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubeletconfig "k8s.io/kubelet/config/v1beta1"
)

// The node: Debian's containerd (with runc and the bridge CNI plugin) and a
// kubelet of the control plane's release, registered as nodeName.
const (
	nodeName      = "tenure-node"
	cniBinDir     = "/usr/lib/cni"
	pauseImage    = "tenure.dev/pause:1"
	workloadImage = "tenure.dev/workload:1"
)

// images are put on the node at every start: the pause image every pod's
// sandbox runs, and the tests' workload. Both are static binaries built by
// cluster.sh next to this one.
var images = map[string]string{pauseImage: "pause", workloadImage: "workload"}

func (c cluster) containerdSocket() string { return c.path("containerd", "containerd.sock") }

// network is the node's pod network: a bridge and a /24 derived from the
// state directory, so control planes of several worktrees never share one.
// The bridge's own address is the node's IP.
type network struct {
	bridge  string
	gateway net.IP
	subnet  string
}

func (c cluster) network() network {
	sum := sha256.Sum256([]byte(c.dir))
	second, third := 64+sum[4]%64, sum[5]
	return network{
		bridge:  fmt.Sprintf("tnr%x", sum[:4]),
		gateway: net.IPv4(10, second, third, 1),
		subnet:  fmt.Sprintf("10.%d.%d.0/24", second, third),
	}
}

// startNode starts containerd and the kubelet and waits until the node is Ready.
func (c cluster) startNode(ctx context.Context, server string, p *pki, ports []int) error {
	n := c.network()
	if err := c.writeNodeFiles(n, server, p, ports); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", "name", n.bridge, "type", "bridge"},
		{"addr", "add", n.gateway.String() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	if err := c.spawnProgram("containerd", "containerd", "--config", c.path("containerd", "config.toml")); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "containerd", func() error { _, err := c.ctr("version"); return err }); err != nil {
		return err
	}
	if err := c.importImages(); err != nil {
		return err
	}

	if err := c.spawn("kubelet",
		"--config="+c.path("kubelet", "config.json"),
		"--kubeconfig="+c.path("kubelet.kubeconfig"),
		"--root-dir="+c.path("kubelet"),
		"--cert-dir="+c.path("kubelet", "pki"),
		"--hostname-override="+nodeName,
		"--node-ip="+n.gateway.String(),
	); err != nil {
		return err
	}
	return c.waitFor(ctx, "kubelet", func() error { return c.nodeReady(ctx) })
}

func (c cluster) writeNodeFiles(n network, server string, p *pki, ports []int) error {
	for _, dir := range []string{"containerd", "cni/net.d", "kubelet", "images"} {
		if err := os.MkdirAll(c.path(dir), 0o755); err != nil {
			return err
		}
	}
	if err := writeKubeconfig(c.path("kubelet.kubeconfig"), server, p, "kubelet"); err != nil {
		return err
	}
	cni, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "tenure",
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    n.bridge,
			"isGateway": true,
			// Pods talk to each other and to this machine only: no masquerading out.
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.subnet, "gateway": n.gateway.String()}}},
				"dataDir": c.path("cni", "ipam"),
			},
		}},
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.path("cni", "net.d", "10-tenure.conflist"), cni, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.path("containerd", "config.toml"), []byte(c.containerdConfig()), 0o644); err != nil {
		return err
	}
	config, err := json.MarshalIndent(c.kubeletConfig(n, p, ports), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.path("kubelet", "config.json"), config, 0o644)
}

// containerdConfig keeps every path of containerd under the state directory.
// restrict_oom_score_adj: this VM refuses lowering oom_score_adj, and runc
// fails ("can't get final child's PID from pipe") when asked to.
func (c cluster) containerdConfig() string {
	dir := c.path("containerd")
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = %[7]q
  conf_dir = %[8]q

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = %[9]q
  SystemdCgroup = false
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.containerdSocket(), c.containerdSocket()+".ttrpc",
		filepath.Join(dir, "opt"), pauseImage, cniBinDir, c.path("cni", "net.d"), filepath.Join(dir, "runc"))
}

// kubeletConfig is what this VM needs: cgroup v1 through cgroupfs, no swap
// check, no QoS or allocatable cgroups, no oom_score_adj below the VM's, no
// resolv.conf (pods resolve nothing outside), ports on the node's IP and
// loopback only, and every directory under the state directory.
func (c cluster) kubeletConfig(n network, p *pki, ports []int) *kubeletconfig.KubeletConfiguration {
	yes, no := true, false
	healthzPort, oomScoreAdj, noResolvConf := int32(ports[1]), int32(0), ""
	return &kubeletconfig.KubeletConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: "kubelet.config.k8s.io/v1beta1", Kind: "KubeletConfiguration"},
		Address:            n.gateway.String(),
		Port:               int32(ports[0]),
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        &healthzPort,
		Authentication: kubeletconfig.KubeletAuthentication{
			X509:      kubeletconfig.KubeletX509Authentication{ClientCAFile: p.path("ca.crt")},
			Webhook:   kubeletconfig.KubeletWebhookAuthentication{Enabled: &yes},
			Anonymous: kubeletconfig.KubeletAnonymousAuthentication{Enabled: &no},
		},
		Authorization:                 kubeletconfig.KubeletAuthorization{Mode: kubeletconfig.KubeletAuthorizationModeWebhook},
		ContainerRuntimeEndpoint:      "unix://" + c.containerdSocket(),
		CgroupDriver:                  "cgroupfs",
		FailCgroupV1:                  &no,
		FailSwapOn:                    &no,
		CgroupsPerQOS:                 &no,
		EnforceNodeAllocatable:        []string{"none"},
		LocalStorageCapacityIsolation: &no,
		OOMScoreAdj:                   &oomScoreAdj,
		ResolverConfig:                &noResolvConf,
		PodLogsDir:                    c.path("kubelet", "pod-logs"),
		VolumePluginDir:               c.path("kubelet", "volume-plugins"),
		// The test images exist only on this node: never collect them.
		ImageGCHighThresholdPercent: ptr(int32(100)),
		ImageGCLowThresholdPercent:  ptr(int32(99)),
		EvictionHard:                map[string]string{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
	}
}

func ptr[T any](v T) *T { return &v }

// nodeReady is nil once the node has registered and reports Ready.
func (c cluster) nodeReady(ctx context.Context) error {
	client, err := c.client()
	if err != nil {
		return err
	}
	node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, condition := range node.Status.Conditions {
		if condition.Type == corev1.NodeReady {
			if condition.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s not ready: %s", nodeName, condition.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", nodeName)
}

// importImages puts the images every start needs on the node.
func (c cluster) importImages() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for name, binary := range images {
		entrypoint := "/" + binary
		files := map[string]string{entrypoint: filepath.Join(filepath.Dir(self), binary)}
		if err := c.putImage(name, files, []string{entrypoint}); err != nil {
			return err
		}
	}
	return nil
}

// putImage writes files as an image named name and imports it into the
// node's containerd, where pods with imagePullPolicy: Never find it.
func (c cluster) putImage(name string, files map[string]string, entrypoint []string) error {
	archive := c.path("images", strings.NewReplacer("/", "_", ":", "_").Replace(name)+".tar")
	if err := writeImage(archive, name, files, entrypoint); err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	_, err := c.ctr("images", "import", archive)
	return err
}

// ctr runs containerd's client against the node's containerd, in the
// namespace the kubelet's containers live in.
func (c cluster) ctr(args ...string) ([]byte, error) {
	command := exec.Command("ctr", append([]string{"--address", c.containerdSocket(), "--namespace", "k8s.io"}, args...)...)
	out, err := command.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// removePods stops and removes every pod sandbox through the CRI, so
// containerd kills the containers, tears down their network (CNI DEL) and
// unmounts their namespaces and root filesystems before it stops.
func (c cluster) removePods() error {
	conn, err := grpc.NewClient("unix://"+c.containerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	runtime := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, pod := range pods.Items {
		if _, err := runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeNodeLeftovers undoes what the node set up on this machine once its
// processes are gone: mounts under the state directory (the kubelet's
// volumes, containerd's root filesystems), the shims of containers the CRI
// could not remove, and the bridge.
func (c cluster) removeNodeLeftovers() error {
	for _, pid := range c.shims() {
		terminate(pid)
	}
	var errs []error
	mounts, err := c.mounts()
	if err != nil {
		errs = append(errs, err)
	}
	for _, mount := range mounts {
		if err := syscall.Unmount(mount, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mount, err))
		}
	}
	bridge := c.network().bridge
	if _, err := net.InterfaceByName(bridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", bridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link delete %s: %v: %s", bridge, err, out))
		}
	}
	return errors.Join(errs...)
}

// shims are the containerd-shim processes serving this node's containerd.
func (c cluster) shims() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv := strings.Split(string(cmdline), "\x00")
		if strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && strings.Contains(string(cmdline), c.containerdSocket()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mounts lists the mount points under the state directory, deepest first.
func (c cluster) mounts() ([]string, error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var mounts []string
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 5 {
			continue
		}
		mount := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mount, c.dir+"/") {
			mounts = append(mounts, mount)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts, scanner.Err()
}

// unescapeMountinfo decodes the octal escapes (\040 for a space) of /proc/self/mountinfo.
func unescapeMountinfo(field string) string {
	var out strings.Builder
	for i := 0; i < len(field); i++ {
		if field[i] == '\\' && i+3 < len(field) {
			if value, err := strconv.ParseUint(field[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(value))
				i += 3
				continue
			}
		}
		out.WriteByte(field[i])
	}
	return out.String()
}
