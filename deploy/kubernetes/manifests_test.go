// Package kubernetes holds the Kubernetes manifests of the Ballast CSI
// driver. Its test decodes every manifest strictly with the Kubernetes API
// types, so that a misspelt field fails the build, and checks that the
// pieces fit together.
package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ballast-io/ballast/csi"
	"github.com/ballast-io/ballast/workloads/sensors"
)

const namespace = "ballast-system"

// object is one decoded manifest document.
type object struct {
	file string
	obj  runtime.Object
}

// load decodes every document of every file matching pattern (*.yaml:
// the driver's; workload/*.yaml: the sensor workload's), strictly: an
// unknown or duplicate field is an error. KEDA's ScaledObject, whose Go
// types are not a dependency, is decoded into scaledObject below.
func load(t *testing.T, pattern string) []object {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, storagev1.AddToScheme, snapv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, err := decodeKEDA(doc)
			if obj == nil && err == nil {
				obj, _, err = decoder.Decode(doc, nil, nil)
			}
			if err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
				continue
			}
			out = append(out, object{f, obj})
		}
	}
	return out
}

func stripComments(doc []byte) []byte {
	var keep [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			keep = append(keep, line)
		}
	}
	return bytes.Join(keep, []byte("\n"))
}

func TestManifests(t *testing.T) {
	objs := load(t, "*.yaml")
	var (
		driver      *storagev1.CSIDriver
		classes     = map[string]*storagev1.StorageClass{}
		snapClasses = map[string]*snapv1.VolumeSnapshotClass{}
		accounts    = map[string]bool{}
		roles       = map[string]bool{}
		node        *appsv1.DaemonSet
		controller  *appsv1.Deployment
		pods        []*corev1.PodTemplateSpec
		claimNames  = map[*corev1.PodTemplateSpec][]string{} // a StatefulSet's volume claim templates
		claims      []corev1.PersistentVolumeClaimSpec
		claimByName = map[string]*corev1.PersistentVolumeClaim{}
		bindings    []runtime.Object
	)
	for _, o := range objs {
		switch x := o.obj.(type) {
		case *storagev1.CSIDriver:
			driver = x
		case *storagev1.StorageClass:
			classes[x.Name] = x
		case *snapv1.VolumeSnapshotClass:
			snapClasses[x.Name] = x
		case *corev1.ServiceAccount:
			accounts[x.Namespace+"/"+x.Name] = true
		case *rbacv1.ClusterRole:
			roles["ClusterRole/"+x.Name] = true
		case *rbacv1.Role:
			roles["Role/"+x.Namespace+"/"+x.Name] = true
		case *rbacv1.ClusterRoleBinding, *rbacv1.RoleBinding:
			bindings = append(bindings, x)
		case *appsv1.DaemonSet:
			node = x
			pods = append(pods, &x.Spec.Template)
		case *appsv1.Deployment:
			controller = x
			pods = append(pods, &x.Spec.Template)
		case *appsv1.StatefulSet:
			pods = append(pods, &x.Spec.Template)
			for _, c := range x.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Spec)
				claimNames[&x.Spec.Template] = append(claimNames[&x.Spec.Template], c.Name)
			}
		case *corev1.PersistentVolumeClaim:
			claims = append(claims, x.Spec)
			claimByName[x.Name] = x
		case *corev1.Pod:
			pods = append(pods, &corev1.PodTemplateSpec{ObjectMeta: x.ObjectMeta, Spec: x.Spec})
		case *snapv1.VolumeSnapshot:
			if c := x.Spec.VolumeSnapshotClassName; c == nil || snapClasses[*c] == nil && !hasSnapClass(objs, *c) {
				t.Errorf("VolumeSnapshot %s names no VolumeSnapshotClass of these manifests", x.Name)
			}
		}
		if m, ok := o.obj.(interface{ GetNamespace() string }); ok && !strings.HasPrefix(o.file, "example-") {
			if ns := m.GetNamespace(); ns != "" && ns != namespace {
				t.Errorf("%s: %T in namespace %q, not %s", o.file, o.obj, ns, namespace)
			}
		}
	}

	if driver == nil || driver.Name != csi.DriverName || driver.Spec.AttachRequired == nil || !*driver.Spec.AttachRequired {
		t.Fatalf("CSIDriver %v: want %s with attachRequired", driver, csi.DriverName)
	}
	if len(classes) == 0 || len(snapClasses) == 0 {
		t.Fatal("no StorageClass or VolumeSnapshotClass")
	}
	for _, c := range classes {
		if c.Provisioner != csi.DriverName {
			t.Errorf("StorageClass %s: provisioner %s", c.Name, c.Provisioner)
		}
		if _, err := csi.ParseParameters(c.Parameters); err != nil {
			t.Errorf("StorageClass %s: the driver refuses its parameters: %v", c.Name, err)
		}
	}
	for _, c := range snapClasses {
		if c.Driver != csi.DriverName {
			t.Errorf("VolumeSnapshotClass %s: driver %s", c.Name, c.Driver)
		}
	}
	for _, c := range claims {
		if c.StorageClassName == nil || classes[*c.StorageClassName] == nil {
			t.Errorf("a claim names no StorageClass of these manifests: %v", c.StorageClassName)
		}
	}

	// RBAC: bindings bind accounts and roles that exist.
	for _, b := range bindings {
		var subjects []rbacv1.Subject
		var ref string
		switch x := b.(type) {
		case *rbacv1.ClusterRoleBinding:
			subjects, ref = x.Subjects, x.RoleRef.Kind+"/"+x.RoleRef.Name
		case *rbacv1.RoleBinding:
			subjects, ref = x.Subjects, x.RoleRef.Kind+"/"+x.Namespace+"/"+x.RoleRef.Name
		}
		if !roles[ref] {
			t.Errorf("a binding refers to %s, which is not here", ref)
		}
		for _, s := range subjects {
			if s.Kind == "ServiceAccount" && !accounts[s.Namespace+"/"+s.Name] {
				t.Errorf("a binding binds ServiceAccount %s/%s, which is not here", s.Namespace, s.Name)
			}
		}
	}

	// Pods: accounts exist, every mount has its volume.
	for _, p := range pods {
		if sa := p.Spec.ServiceAccountName; sa != "" && !accounts[namespace+"/"+sa] {
			t.Errorf("pod template %v uses ServiceAccount %s, which is not here", p.Labels, sa)
		}
		for _, c := range p.Spec.Containers {
			for _, m := range c.VolumeMounts {
				if volume(p, m.Name) == nil && !slices.Contains(claimNames[p], m.Name) {
					t.Errorf("container %s mounts volume %s, which its pod does not have", c.Name, m.Name)
				}
			}
			// A raw block device comes from a claim of volumeMode Block.
			for _, d := range c.VolumeDevices {
				v := volume(p, d.Name)
				if v == nil || v.PersistentVolumeClaim == nil {
					t.Errorf("container %s uses device %s, which is no claim of its pod", c.Name, d.Name)
					continue
				}
				pvc := claimByName[v.PersistentVolumeClaim.ClaimName]
				if pvc == nil || pvc.Spec.VolumeMode == nil || *pvc.Spec.VolumeMode != corev1.PersistentVolumeBlock {
					t.Errorf("container %s uses claim %s as a block device; it must be here with volumeMode Block", c.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
		}
	}

	// The node plugin: the daemon serves the CSI socket where the
	// registrar tells the kubelet it is, privileged, with the kubelet's
	// dir shared both ways, on the host network.
	if node == nil {
		t.Fatal("no node DaemonSet")
	}
	plugin := "/var/lib/kubelet/plugins/" + csi.DriverName
	socket := plugin + "/csi.sock"
	ps := node.Spec.Template.Spec
	if !ps.HostNetwork {
		t.Error("the node plugin must use the host network (replicas are served on the node's address)")
	}
	daemon := container(ps.Containers, "ballast")
	if daemon == nil || daemon.SecurityContext == nil || daemon.SecurityContext.Privileged == nil || !*daemon.SecurityContext.Privileged {
		t.Fatal("the ballast container must be privileged")
	}
	if !slices.Contains(daemon.Args, "--csi-endpoint=unix://"+socket) || daemon.Args[0] != "daemon" {
		t.Errorf("ballast args %v: want daemon ... --csi-endpoint=unix://%s", daemon.Args, socket)
	}
	for _, path := range []string{"/var/lib/kubelet", "/var/lib/ballast"} {
		m := mountAt(daemon, path)
		if m == nil || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
			t.Errorf("the ballast container must mount %s with Bidirectional propagation: %+v", path, m)
		}
	}
	if m := mountAt(daemon, "/dev"); m == nil || hostPath(&node.Spec.Template, m.Name) != "/dev" {
		t.Error("the ballast container must see the host's /dev (loop devices)")
	}
	reg := container(ps.Containers, "node-driver-registrar")
	if reg == nil || !slices.Contains(reg.Args, "--kubelet-registration-path="+socket) {
		t.Fatalf("node-driver-registrar must register %s", socket)
	}
	checkSocket(t, &node.Spec.Template, reg)

	// The controller: the four sidecars, each reaching the node's socket.
	if controller == nil {
		t.Fatal("no controller Deployment")
	}
	for _, name := range []string{"csi-provisioner", "csi-attacher", "csi-snapshotter", "csi-resizer"} {
		c := container(controller.Spec.Template.Spec.Containers, name)
		if c == nil {
			t.Errorf("the controller has no %s", name)
			continue
		}
		checkSocket(t, &controller.Spec.Template, c)
	}
}

// checkSocket makes sure a sidecar's --csi-address is the driver's socket
// in the kubelet's plugin dir on the host.
func checkSocket(t *testing.T, p *corev1.PodTemplateSpec, c *corev1.Container) {
	t.Helper()
	var addr string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--csi-address="); ok {
			addr = v
		}
	}
	m := mountAt(c, filepath.Dir(addr))
	if addr == "" || m == nil || hostPath(p, m.Name)+"/"+filepath.Base(addr) != "/var/lib/kubelet/plugins/"+csi.DriverName+"/csi.sock" {
		t.Errorf("%s: --csi-address %q does not reach the driver's socket on the host", c.Name, addr)
	}
}

func hasSnapClass(objs []object, name string) bool {
	for _, o := range objs {
		if c, ok := o.obj.(*snapv1.VolumeSnapshotClass); ok && c.Name == name {
			return true
		}
	}
	return false
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

func volume(p *corev1.PodTemplateSpec, name string) *corev1.Volume {
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == name {
			return &p.Spec.Volumes[i]
		}
	}
	return nil
}

func hostPath(p *corev1.PodTemplateSpec, name string) string {
	if v := volume(p, name); v != nil && v.HostPath != nil {
		return v.HostPath.Path
	}
	return ""
}

func mountAt(c *corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// TestStrictDecoding makes sure the decoding above does catch a misspelt
// field.
func TestStrictDecoding(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := storagev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	bad := "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: x\nprovisioner: csi.ballast.io\nallowVolumeExpanson: true\n"
	if _, _, err := decoder.Decode([]byte(bad), nil, nil); err == nil || !strings.Contains(err.Error(), "allowVolumeExpanson") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}

// scaledObject mirrors the fields of KEDA's ScaledObject (keda.sh/v1alpha1,
// github.com/kedacore/keda/v2/apis/keda/v1alpha1) that manifests may use,
// so that a misspelt one fails strict decoding.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion             string `json:"apiVersion"`
			Kind                   string `json:"kind"`
			Name                   string `json:"name"`
			EnvSourceContainerName string `json:"envSourceContainerName"`
		} `json:"scaleTargetRef"`
		PollingInterval       *int32 `json:"pollingInterval"`
		InitialCooldownPeriod *int32 `json:"initialCooldownPeriod"`
		CooldownPeriod        *int32 `json:"cooldownPeriod"`
		IdleReplicaCount      *int32 `json:"idleReplicaCount"`
		MinReplicaCount       *int32 `json:"minReplicaCount"`
		MaxReplicaCount       *int32 `json:"maxReplicaCount"`
		Advanced              *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name"`
			UseCachedMetrics  bool              `json:"useCachedMetrics"`
			MetricType        string            `json:"metricType"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
		Fallback *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback"`
	} `json:"spec"`
}

func (s *scaledObject) DeepCopyObject() runtime.Object { c := *s; return &c }

// decodeKEDA decodes doc strictly if it is a KEDA object; it returns nil,
// nil for any other.
func decodeKEDA(doc []byte) (runtime.Object, error) {
	js, err := yaml.ToJSON(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil || !strings.HasPrefix(tm.APIVersion, "keda.sh/") {
		return nil, nil // not KEDA's: the scheme's decoder says what is wrong
	}
	if tm.APIVersion != "keda.sh/v1alpha1" || tm.Kind != "ScaledObject" {
		return nil, fmt.Errorf("%s %s: only keda.sh/v1alpha1 ScaledObject is checked here", tm.APIVersion, tm.Kind)
	}
	var so scaledObject
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&so); err != nil {
		return nil, fmt.Errorf("ScaledObject: %w", err)
	}
	return &so, nil
}

// kafkaScalerMetadata is the metadata KEDA's Kafka scaler reads.
var kafkaScalerMetadata = []string{"bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv",
	"topic", "topicFromEnv", "partitionLimitation", "lagThreshold", "activationLagThreshold", "offsetResetPolicy",
	"allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset", "limitToPartitionsWithLag",
	"ensureEvenDistributionOfPartitions", "version", "sasl", "tls", "unsafeSsl"}

// TestWorkloadManifests checks the sensor workload's manifests
// (workload/): the KEDA ScaledObject scales the ingester Deployment with
// the Kafka scaler on the consumer group and topic the code uses, through
// the broker's Service; the servers' claims use the driver's StorageClass.
func TestWorkloadManifests(t *testing.T) {
	classes := map[string]bool{}
	for _, o := range load(t, "*.yaml") {
		if c, ok := o.obj.(*storagev1.StorageClass); ok {
			classes[c.Name] = true
		}
	}
	var (
		scaled      []*scaledObject
		deployments = map[string]*appsv1.Deployment{}
		services    = map[string]*corev1.Service{}
	)
	for _, o := range load(t, "workload/*.yaml") {
		switch x := o.obj.(type) {
		case *scaledObject:
			scaled = append(scaled, x)
		case *appsv1.Deployment:
			deployments[x.Namespace+"/"+x.Name] = x
		case *corev1.Service:
			services[x.Namespace+"/"+x.Name] = x
		case *appsv1.StatefulSet:
			for _, c := range x.Spec.VolumeClaimTemplates {
				if c.Spec.StorageClassName == nil || !classes[*c.Spec.StorageClassName] {
					t.Errorf("StatefulSet %s: claim %s names no StorageClass of the driver's manifests", x.Name, c.Name)
				}
			}
		}
	}
	if len(scaled) != 1 {
		t.Fatalf("%d ScaledObjects in workload/, want 1", len(scaled))
	}
	so := scaled[0]
	ref := so.Spec.ScaleTargetRef
	d := deployments[so.Namespace+"/"+ref.Name]
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || d == nil {
		t.Fatalf("the ScaledObject scales %s %s %s/%s, which is no Deployment here", ref.APIVersion, ref.Kind, so.Namespace, ref.Name)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers, want the ingester alone", d.Name, len(d.Spec.Template.Spec.Containers))
	}
	args := d.Spec.Template.Spec.Containers[0].Args
	if len(args) < 2 || args[0] != "workload" || args[1] != "ingest" {
		t.Fatalf("Deployment %s runs %v, not the ingester", d.Name, args)
	}
	flag := func(name, def string) string {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
				return v
			}
		}
		return def
	}
	if mn, mx := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount; mn == nil || mx == nil || *mn < 1 || *mx < *mn {
		t.Errorf("replicas: min %v, max %v; want 1 <= min <= max", mn, mx)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v: want one of type kafka", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	for k := range md {
		if !slices.Contains(kafkaScalerMetadata, k) {
			t.Errorf("Kafka trigger: metadata %q is none KEDA's Kafka scaler reads", k)
		}
	}
	if md["consumerGroup"] != sensors.Group || md["topic"] != sensors.Topic {
		t.Errorf("Kafka trigger on group %q, topic %q; the ingester's are %s, %s", md["consumerGroup"], md["topic"], sensors.Group, sensors.Topic)
	}
	if g, tp := flag("group", sensors.Group), flag("topic", sensors.Topic); g != md["consumerGroup"] || tp != md["topic"] {
		t.Errorf("the ingester consumes %s in group %s; the trigger watches %s in %s", tp, g, md["topic"], md["consumerGroup"])
	}
	if n, err := strconv.ParseInt(md["lagThreshold"], 10, 64); err != nil || n < 1 {
		t.Errorf("lagThreshold %q: want a positive integer", md["lagThreshold"])
	}
	// The trigger and the ingester reach the broker through its Service.
	if b := flag("brokers", ""); b != md["bootstrapServers"] {
		t.Errorf("the ingester's brokers %q, the trigger's %q", b, md["bootstrapServers"])
	}
	for _, b := range strings.Split(md["bootstrapServers"], ",") {
		host, port, err := net.SplitHostPort(b)
		name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc"), ".")
		svc := services[ns+"/"+name]
		if err != nil || svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
			t.Errorf("bootstrap server %q is no port of a Service here", b)
		}
	}
}
