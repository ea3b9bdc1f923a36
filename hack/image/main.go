// Command image packs the operator's static binary into an OCI image, with no container
// daemon: one layer holding the binary, a passwd/group naming the non-root user it runs
// as, and nothing else (no shell, no libc: the binary is statically linked).
//
// It writes an OCI image layout directory (-layout) and, if asked, a tarball that
// `docker load` and `podman load` accept and `crane push` can push (-tarball).
// Timestamps are fixed (-created, seconds since the epoch), so the same binary gives the
// same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const binaryPath = "usr/local/bin/alicloud-rollouts"

type options struct {
	binary, layoutDir, tarballPath, tag, version string
	uid                                          int
	created                                      int64
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the static alicloud-rollouts binary to pack")
	flag.StringVar(&o.layoutDir, "layout", "", "write an OCI image layout to this directory (replaced)")
	flag.StringVar(&o.tarballPath, "tarball", "", "also write a `docker load` tarball here")
	flag.StringVar(&o.tag, "tag", "alicloud-rollouts:dev", "the image's name and tag")
	flag.StringVar(&o.version, "version", "", "the version label (org.opencontainers.image.version)")
	flag.IntVar(&o.uid, "uid", 65532, "the non-root user (and group) id the image runs as")
	flag.Int64Var(&o.created, "created", 0, "creation time, seconds since the epoch")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.binary == "" || o.layoutDir == "" {
		return fmt.Errorf("-binary and -layout are required")
	}
	if o.uid <= 0 {
		return fmt.Errorf("-uid must name a non-root user, got %d", o.uid)
	}
	ref, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", o.tag, err)
	}
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return err
	}
	created := time.Unix(o.created, 0).UTC()
	rootfs, err := rootfsTar(bin, o.uid, created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(rootfs)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image: " + binaryPath},
	})
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Created = v1.Time{Time: created}
	user := fmt.Sprintf("%d:%d", o.uid, o.uid)
	cfg.Config.User = user
	cfg.Config.Entrypoint = []string{"/" + binaryPath}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/bin"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "alicloud-rollouts",
		"org.opencontainers.image.version": o.version,
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}

	if err := os.RemoveAll(o.layoutDir); err != nil {
		return err
	}
	p, err := layout.Write(o.layoutDir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.TagStr(),
	})); err != nil {
		return err
	}
	if o.tarballPath != "" {
		if err := tarball.WriteToFile(o.tarballPath, ref, img); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", ref.String(), digest)
	return nil
}

// rootfsTar is the image's one layer: the binary, and the user it runs as.
func rootfsTar(bin []byte, uid int, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: 0o755,
			Uid: owner, Gid: owner, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode,
			Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid)
	steps := []func() error{
		func() error { return dir("etc", 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		// Name lookups from /etc/hosts, then DNS (the operator resolves the cloud's
		// endpoints).
		func() error { return file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")) },
		func() error { return dir("home", 0) },
		func() error { return dir("home/nonroot", uid) },
		func() error { return dir("usr", 0) },
		func() error { return dir("usr/local", 0) },
		func() error { return dir("usr/local/bin", 0) },
		func() error { return file(binaryPath, 0o755, bin) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
