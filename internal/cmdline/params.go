package cmdline

import (
	"slices"
	"text/template/parse"
)

// ParamRefs lists the parameters text names statically, sorted: every
// {{param "x"}} and every .Params.x (or $.Params.x). A range over .Params
// or an index expression names none (it sees whatever is set). The
// manager checks them against an image's declared parameters.
func ParamRefs(text string) ([]string, error) {
	if text == "" {
		return nil, nil
	}
	t, err := Parse(text, func(string) (string, error) { return "", nil })
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if t.Tree != nil {
		refs(t.Root, add)
	}
	slices.Sort(out)
	return out, nil
}

func refs(n parse.Node, add func(string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			refs(c, add)
		}
	case *parse.ActionNode:
		refs(n.Pipe, add)
	case *parse.IfNode:
		refs(n.Pipe, add)
		refs(n.List, add)
		refs(n.ElseList, add)
	case *parse.WithNode:
		refs(n.Pipe, add)
		refs(n.List, add)
		refs(n.ElseList, add)
	case *parse.RangeNode:
		refs(n.Pipe, add)
		refs(n.ElseList, add)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			refs(c, add)
		}
	case *parse.CommandNode:
		if len(n.Args) == 2 {
			id, ok1 := n.Args[0].(*parse.IdentifierNode)
			s, ok2 := n.Args[1].(*parse.StringNode)
			if ok1 && ok2 && id.Ident == "param" {
				add(s.Text)
			}
		}
		for _, a := range n.Args {
			refs(a, add)
		}
	case *parse.FieldNode:
		if len(n.Ident) == 2 && n.Ident[0] == "Params" {
			add(n.Ident[1])
		}
	case *parse.VariableNode:
		if len(n.Ident) == 3 && n.Ident[0] == "$" && n.Ident[1] == "Params" {
			add(n.Ident[2])
		}
	}
}
