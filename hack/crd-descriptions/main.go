// Command crd-descriptions rewrites the descriptions of generated CRDs so `kubectl explain`
// reads well: controller-gen keeps the Go comments' line breaks, which kubectl prints as they
// are (a break in mid-sentence, then its own wrapping). Lines of one paragraph are joined;
// blank lines (paragraph breaks) and list items are kept.
//
//	go run ./hack/crd-descriptions config/crd/bases/*.yaml
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	for _, path := range os.Args[1:] {
		if err := rewrite(path); err != nil {
			fmt.Fprintln(os.Stderr, path+":", err)
			os.Exit(1)
		}
	}
}

func rewrite(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	walk(&doc)
	var out bytes.Buffer
	if bytes.HasPrefix(data, []byte("---\n")) {
		out.WriteString("---\n")
	}
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

func walk(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "description" && v.Kind == yaml.ScalarNode {
				v.Value = Unwrap(v.Value)
				if !strings.Contains(v.Value, "\n") {
					v.Style = 0
				}
			}
		}
	}
	for _, c := range n.Content {
		walk(c)
	}
}

var listItem = regexp.MustCompile(`^\s*([-*]|\d+\.)\s`)

// Unwrap joins the lines of each paragraph with a space.
func Unwrap(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	var out []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "":
			out = append(out, "")
		case len(out) == 0 || out[len(out)-1] == "" || listItem.MatchString(l):
			out = append(out, t)
		default:
			out[len(out)-1] += " " + t
		}
	}
	return strings.Join(out, "\n")
}
