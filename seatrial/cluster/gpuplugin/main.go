// seatrial-gpu-plugin: a kubelet device plugin (API v1beta1, the one NVIDIA's plugin speaks) for
// the local cluster's real GPU nodes, which have no GPUs.
//
// It advertises COUNT simulated GPUs as nvidia.com/gpu, hands each container its device IDs the
// way NVIDIA's plugin does (NVIDIA_VISIBLE_DEVICES) plus a read-only view of the health files,
// and reports a device Unhealthy when its health file says so. The kubelet then drops the node's
// allocatable, keeps capacity, and never assigns that device again: a GPU fault takes the same
// path through the kubelet as an XID does on a real node.
//
// Health files: STATE/<device ID>, one line. "Healthy" or anything starting with "Unhealthy"
// (seatrial writes the XID there, e.g. "Unhealthy XID 79 GPU has fallen off the bus").
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	api "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const containerHealthDir = "/run/seatrial/gpus"

type plugin struct {
	api.UnimplementedDevicePluginServer
	ids      []string
	state    string
	mu       sync.Mutex
	health   map[string]string
	changed  chan struct{}
	watchers map[chan struct{}]struct{}
}

// readHealth reads every health file; a missing or unreadable file counts as healthy.
func (p *plugin) readHealth() map[string]string {
	out := make(map[string]string, len(p.ids))
	for _, id := range p.ids {
		out[id] = api.Healthy
		b, err := os.ReadFile(filepath.Join(p.state, id))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), api.Unhealthy) {
			out[id] = api.Unhealthy
		}
	}
	return out
}

func (p *plugin) devices() []*api.Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*api.Device, 0, len(p.ids))
	for _, id := range p.ids {
		out = append(out, &api.Device{ID: id, Health: p.health[id]})
	}
	return out
}

// poll re-reads the health files and wakes every ListAndWatch stream when one changed.
func (p *plugin) poll() {
	for range time.Tick(500 * time.Millisecond) {
		now := p.readHealth()
		p.mu.Lock()
		changed := false
		for id, h := range now {
			if p.health[id] != h {
				log.Printf("device %s is now %s", id, h)
				changed = true
			}
		}
		p.health = now
		if changed {
			for w := range p.watchers {
				select {
				case w <- struct{}{}:
				default:
				}
			}
		}
		p.mu.Unlock()
	}
}

func (p *plugin) GetDevicePluginOptions(context.Context, *api.Empty) (*api.DevicePluginOptions, error) {
	return &api.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *api.Empty, stream grpc.ServerStreamingServer[api.ListAndWatchResponse]) error {
	wake := make(chan struct{}, 1)
	p.mu.Lock()
	p.watchers[wake] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.watchers, wake)
		p.mu.Unlock()
	}()
	for {
		if err := stream.Send(&api.ListAndWatchResponse{Devices: p.devices()}); err != nil {
			return err
		}
		select {
		case <-wake:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (p *plugin) Allocate(_ context.Context, req *api.AllocateRequest) (*api.AllocateResponse, error) {
	resp := &api.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		ids := append([]string(nil), c.DevicesIds...)
		sort.Strings(ids)
		log.Printf("allocating %s", strings.Join(ids, ","))
		resp.ContainerResponses = append(resp.ContainerResponses, &api.ContainerAllocateResponse{
			Envs:   map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(ids, ",")},
			Mounts: []*api.Mount{{ContainerPath: containerHealthDir, HostPath: p.state, ReadOnly: true}},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *api.PreStartContainerRequest) (*api.PreStartContainerResponse, error) {
	return &api.PreStartContainerResponse{}, nil
}

// serve listens on the plugin socket and registers with the kubelet; it returns when the socket
// is gone (the kubelet empties its plugin directory when it restarts) so the caller serves again.
func (p *plugin) serve(dir, endpoint, resource string) error {
	sock := filepath.Join(dir, endpoint)
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", sock, err)
	}
	srv := grpc.NewServer()
	api.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("kubelet socket: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = api.NewRegistrationClient(conn).Register(ctx, &api.RegisterRequest{
		Version: api.Version, Endpoint: endpoint, ResourceName: resource,
	})
	if err != nil {
		return fmt.Errorf("registering with the kubelet: %w", err)
	}
	log.Printf("registered %d %s with the kubelet", len(p.ids), resource)
	for {
		time.Sleep(time.Second)
		if _, err := os.Stat(sock); err != nil {
			return fmt.Errorf("socket %s is gone (kubelet restarted)", sock)
		}
	}
}

func main() {
	dir := flag.String("dir", api.DevicePluginPath, "the kubelet's device plugin directory")
	state := flag.String("state", "", "directory of one health file per device")
	node := flag.String("node", "", "node name, part of each device ID")
	count := flag.Int("count", 1, "how many GPUs to advertise")
	resource := flag.String("resource", "nvidia.com/gpu", "extended resource name")
	version := flag.Bool("version", false, "print the device plugin API and k8s.io/kubelet version")
	flag.Parse()
	if *version {
		kubelet := "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, d := range info.Deps {
				if d.Path == "k8s.io/kubelet" {
					kubelet = d.Version
				}
			}
		}
		fmt.Printf("seatrial-gpu-plugin: device plugin API %s, k8s.io/kubelet %s\n", api.Version, kubelet)
		return
	}
	if *state == "" || *node == "" || *count < 1 {
		log.Fatal("usage: seatrial-gpu-plugin -state DIR -node NAME -count N [-dir DIR]")
	}
	if err := os.MkdirAll(*state, 0o755); err != nil {
		log.Fatal(err)
	}
	p := &plugin{state: *state, watchers: map[chan struct{}]struct{}{}}
	for i := 0; i < *count; i++ {
		id := fmt.Sprintf("GPU-%s-%d", *node, i)
		p.ids = append(p.ids, id)
		f := filepath.Join(*state, id)
		if _, err := os.Stat(f); err != nil {
			if err := os.WriteFile(f, []byte(api.Healthy+"\n"), 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
	p.health = p.readHealth()
	go p.poll()
	for {
		err := p.serve(*dir, "seatrial-gpu.sock", *resource)
		log.Printf("%v; serving again in 1s", err)
		time.Sleep(time.Second)
	}
}
