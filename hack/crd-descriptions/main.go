// Command crd-descriptions rewrites generated CRDs so `kubectl explain` reads well:
//
//   - controller-gen keeps the Go comments' line breaks, which kubectl prints as they are (a
//     break in mid-sentence, then its own wrapping): lines of one paragraph are joined; blank
//     lines (paragraph breaks) and list items are kept;
//
//   - kubectl explain shows neither defaults nor ranges: they are appended to the description
//     from the schema ("Default: 4. Range: 1 to 64.") unless it already states a default;
//
//   - a quantity field of ours (int-or-string with the quantity pattern) shows as <Object>: it
//     becomes type string (quantities are written "50Gi"); map values such as resources'
//     requests keep int-or-string, where `cpu: 4` is common.
//
//     go run ./hack/crd-descriptions config/crd/bases/*.yaml
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
			}
			if k.Value == "properties" && v.Kind == yaml.MappingNode {
				for j := 1; j < len(v.Content); j += 2 {
					field := v.Content[j]
					quantityAsString(field)
					describeBounds(field)
				}
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "description" && !strings.Contains(n.Content[i+1].Value, "\n") {
				n.Content[i+1].Style = 0
			}
		}
	}
	for _, c := range n.Content {
		walk(c)
	}
}

func get(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func remove(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

// quantityAsString turns an int-or-string quantity property into a string one.
func quantityAsString(f *yaml.Node) {
	ios, pattern := get(f, "x-kubernetes-int-or-string"), get(f, "pattern")
	if ios == nil || ios.Value != "true" || pattern == nil || pattern.Value != quantityPattern {
		return
	}
	remove(f, "anyOf")
	remove(f, "x-kubernetes-int-or-string")
	// A bound length also keeps the cost of the field's CEL rules within the API server's budget.
	f.Content = append([]*yaml.Node{
		{Kind: yaml.ScalarNode, Value: "type"}, {Kind: yaml.ScalarNode, Value: "string"},
		{Kind: yaml.ScalarNode, Value: "maxLength"}, {Kind: yaml.ScalarNode, Value: "64", Tag: "!!int"},
	}, f.Content...)
}

// describeBounds appends the default and the range to a property's description.
func describeBounds(f *yaml.Node) {
	desc := get(f, "description")
	if desc == nil || f.Kind != yaml.MappingNode {
		return
	}
	var extra []string
	if d := get(f, "default"); d != nil && !strings.Contains(strings.ToLower(desc.Value), "default") {
		if text := inline(d); text != "" && len(text) <= 80 {
			extra = append(extra, "Default: "+text+".")
		}
	}
	lo, hi := get(f, "minimum"), get(f, "maximum")
	if strings.Contains(desc.Value, "Range: ") || strings.Contains(desc.Value, "Minimum: ") || strings.Contains(desc.Value, "Maximum: ") {
		lo, hi = nil, nil // already described (an earlier run)
	}
	switch {
	case lo != nil && hi != nil:
		extra = append(extra, "Range: "+lo.Value+" to "+hi.Value+".")
	case lo != nil:
		extra = append(extra, "Minimum: "+lo.Value+".")
	case hi != nil:
		extra = append(extra, "Maximum: "+hi.Value+".")
	}
	if len(extra) > 0 {
		desc.Value = strings.TrimRight(desc.Value, " ") + " " + strings.Join(extra, " ")
	}
}

// inline renders a default value on one line; empty for objects (their fields say theirs).
func inline(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value
	case yaml.SequenceNode:
		var parts []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return ""
			}
			parts = append(parts, c.Value)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return ""
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
