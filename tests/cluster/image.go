package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// writeImage writes an OCI image-layout archive, the format
// `ctr images import` reads: one uncompressed layer holding files (path in
// the image → file on this machine, mode kept) and a config running
// entrypoint. Without a registry or a build daemon, this is the least
// fragile way to make an image here: no container runtime runs to build it,
// and the archive is a pure function of the files, so the same files always
// give the same image digest.
func writeImage(archive, name string, files map[string]string, entrypoint []string) error {
	layer, err := layerTar(files)
	if err != nil {
		return err
	}
	layerDigest := digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": entrypoint, "Env": []string{"PATH=/"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar", layer)},
	})
	if err != nil {
		return err
	}
	manifestDescriptor := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	manifestDescriptor["platform"] = map[string]string{"architecture": "amd64", "os": "linux"}
	manifestDescriptor["annotations"] = map[string]string{"io.containerd.image.name": name}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{manifestDescriptor}})
	if err != nil {
		return err
	}

	var out bytes.Buffer
	w := tar.NewWriter(&out)
	entries := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
		{blobPath(layer), layer},
	}
	for _, entry := range entries {
		if err := addFile(w, entry.name, 0o644, entry.data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.WriteFile(archive, out.Bytes(), 0o644)
}

// layerTar is a tar of files in a fixed order with zeroed times and owners.
func layerTar(files map[string]string) ([]byte, error) {
	targets := make([]string, 0, len(files))
	for target := range files {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	var out bytes.Buffer
	w := tar.NewWriter(&out)
	for _, target := range targets {
		data, err := os.ReadFile(files[target])
		if err != nil {
			return nil, err
		}
		info, err := os.Stat(files[target])
		if err != nil {
			return nil, err
		}
		if err := addFile(w, strings.TrimPrefix(path.Clean("/"+target), "/"), int64(info.Mode().Perm()), data); err != nil {
			return nil, err
		}
	}
	err := w.Close()
	return out.Bytes(), err
}

func addFile(w *tar.Writer, name string, mode int64, data []byte) error {
	header := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := w.WriteHeader(header); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

func digest(data []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(data)) }

func blobPath(data []byte) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest(data), "sha256:")
}

func descriptor(mediaType string, data []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(data), "size": len(data)}
}
