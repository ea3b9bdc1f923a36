// Command kstatus computes the status Flux and the cli-utils applier read from an object,
// with the library they use (sigs.k8s.io/cli-utils/pkg/kstatus/status). The tests feed it
// objects the operator wrote to a real API server, so the conditions are judged by the
// real library rather than by our reading of its rules.
//
// Usage: kstatus FILE...   (each a JSON or YAML object; "-" reads stdin)
//
// For each object it prints one JSON line: {"file", "status", "message"}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	File    string `json:"file"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func read(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

func compute(path string) (verdict, error) {
	raw, err := read(path)
	if err != nil {
		return verdict{}, err
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return verdict{}, fmt.Errorf("%s: %w", path, err)
	}
	// Decoded as client-go decodes objects from the API server (integers stay int64).
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc); err != nil {
		return verdict{}, fmt.Errorf("%s: %w", path, err)
	}
	res, err := status.Compute(u)
	if err != nil {
		return verdict{}, fmt.Errorf("%s: %w", path, err)
	}
	return verdict{File: path, Status: res.Status.String(), Message: res.Message}, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus FILE... (JSON or YAML objects; - for stdin)")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, path := range os.Args[1:] {
		v, err := compute(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		if err := out.Encode(v); err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
	}
}
