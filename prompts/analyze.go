package prompts

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"text/template"
	"text/template/parse"
)

var (
	inputType   = reflect.TypeFor[Input]()
	exampleType = reflect.TypeFor[Example]()
)

// fieldInfo is what static analysis learns about a template's use of Input.
type fieldInfo struct {
	fields       []string // Input fields referenced anywhere, sorted
	required     []string // Input fields that must be non-empty, sorted
	requiredDemo []string // Example fields each demonstration must fill, sorted
}

// analyzer walks a parsed template, tracking the type of dot and of
// variables, to find field references and check them against Input and
// Example. A nil type means "unknown": references through it are not checked.
type analyzer struct {
	root    *template.Template
	refs    map[string]bool
	req     map[string]bool
	reqDemo map[string]bool
	visited map[string]bool // "template name|dot type" already walked
	err     error

	cond    bool      // walking a condition (if/with pipe, or a range with else)
	collect *[]string // guard keys referenced by the condition being walked
}

type scope struct {
	tree  *parse.Tree
	dot   reflect.Type
	vars  map[string]reflect.Type
	guard map[string]bool // "Type.Field" keys tested by an enclosing if/with
}

func (s *scope) clone() *scope {
	c := &scope{tree: s.tree, dot: s.dot, vars: make(map[string]reflect.Type, len(s.vars)), guard: make(map[string]bool, len(s.guard))}
	for k, v := range s.vars {
		c.vars[k] = v
	}
	for k, v := range s.guard {
		c.guard[k] = v
	}
	return c
}

func analyze(tm *template.Template) (*fieldInfo, error) {
	a := &analyzer{
		root:    tm,
		refs:    map[string]bool{},
		req:     map[string]bool{},
		reqDemo: map[string]bool{},
		visited: map[string]bool{},
	}
	sc := &scope{tree: tm.Tree, dot: inputType, vars: map[string]reflect.Type{"$": inputType}, guard: map[string]bool{}}
	a.visited[tm.Name()+"|"+typeKey(inputType)] = true
	a.walk(tm.Tree.Root, sc)
	if a.err != nil {
		return nil, a.err
	}
	return &fieldInfo{fields: keys(a.refs), required: keys(a.req), requiredDemo: keys(a.reqDemo)}, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func typeKey(t reflect.Type) string {
	if t == nil {
		return "?"
	}
	return t.String()
}

func (a *analyzer) fail(sc *scope, n parse.Node, err error) {
	if a.err != nil {
		return
	}
	loc, _ := sc.tree.ErrorContext(n)
	a.err = fmt.Errorf("prompts: %s: %w", loc, err)
}

func (a *analyzer) walk(n parse.Node, sc *scope) {
	if a.err != nil || n == nil {
		return
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			a.walk(c, sc)
		}
	case *parse.ActionNode:
		a.pipe(n.Pipe, sc)
	case *parse.IfNode:
		a.branch(&n.BranchNode, sc, false, false)
	case *parse.WithNode:
		a.branch(&n.BranchNode, sc, true, false)
	case *parse.RangeNode:
		a.branch(&n.BranchNode, sc, false, true)
	case *parse.TemplateNode:
		dot := a.pipe(n.Pipe, sc)
		a.call(n, n.Name, dot, sc)
	}
}

// branch walks an if, with or range node.
func (a *analyzer) branch(b *parse.BranchNode, sc *scope, isWith, isRange bool) {
	inner := sc.clone()
	var guards []string
	saveCond, saveCollect := a.cond, a.collect
	// The data a range iterates over is required unless the range has an
	// {{else}}; an if/with condition never is, and guards its blocks.
	a.cond = !isRange || b.ElseList != nil
	if !isRange {
		a.collect = &guards
	}
	var t reflect.Type
	if isRange {
		t = a.pipeNoDecl(b.Pipe, inner)
	} else {
		t = a.pipe(b.Pipe, inner)
	}
	a.cond, a.collect = saveCond, saveCollect
	for _, g := range guards {
		inner.guard[g] = true
	}

	body := inner.clone()
	switch {
	case isWith:
		body.dot = t
	case isRange:
		elem, index := rangeTypes(t)
		body.dot = elem
		if b.Pipe != nil {
			switch len(b.Pipe.Decl) {
			case 1:
				body.vars[b.Pipe.Decl[0].Ident[0]] = elem
			case 2:
				body.vars[b.Pipe.Decl[0].Ident[0]] = index
				body.vars[b.Pipe.Decl[1].Ident[0]] = elem
			}
		}
	}
	a.walk(b.List, body)
	if b.ElseList != nil {
		a.walk(b.ElseList, inner.clone())
	}
}

func rangeTypes(t reflect.Type) (elem, index reflect.Type) {
	if t == nil {
		return nil, nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return t.Elem(), reflect.TypeFor[int]()
	case reflect.Map:
		return t.Elem(), t.Key()
	case reflect.Chan:
		return t.Elem(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return t, t
	}
	return nil, nil
}

// call walks a {{template}} invocation once per (template, dot type).
func (a *analyzer) call(n *parse.TemplateNode, name string, dot reflect.Type, sc *scope) {
	key := name + "|" + typeKey(dot)
	if a.visited[key] {
		return
	}
	a.visited[key] = true
	tt := a.root.Lookup(name)
	if tt == nil || tt.Tree == nil {
		a.fail(sc, n, fmt.Errorf("template %q is not defined", name))
		return
	}
	a.walk(tt.Tree.Root, &scope{tree: tt.Tree, dot: dot, vars: map[string]reflect.Type{"$": dot}, guard: map[string]bool{}})
}

// pipe walks a pipeline, declares its variables, and returns its type.
func (a *analyzer) pipe(p *parse.PipeNode, sc *scope) reflect.Type {
	t := a.pipeNoDecl(p, sc)
	if p != nil && !p.IsAssign {
		for _, d := range p.Decl {
			sc.vars[d.Ident[0]] = t
		}
	}
	return t
}

func (a *analyzer) pipeNoDecl(p *parse.PipeNode, sc *scope) reflect.Type {
	if p == nil {
		return nil
	}
	var t reflect.Type
	for _, cmd := range p.Cmds {
		t = a.command(cmd, sc)
	}
	return t
}

func (a *analyzer) command(cmd *parse.CommandNode, sc *scope) reflect.Type {
	if len(cmd.Args) == 1 {
		return a.arg(cmd.Args[0], sc)
	}
	for _, arg := range cmd.Args {
		a.arg(arg, sc)
	}
	return nil
}

func (a *analyzer) arg(n parse.Node, sc *scope) reflect.Type {
	switch n := n.(type) {
	case *parse.FieldNode:
		return a.resolve(sc.dot, n.Ident, n, sc)
	case *parse.VariableNode:
		t, ok := sc.vars[n.Ident[0]]
		if !ok {
			return nil
		}
		return a.resolve(t, n.Ident[1:], n, sc)
	case *parse.DotNode:
		return sc.dot
	case *parse.ChainNode:
		return a.resolve(a.arg(n.Node, sc), n.Field, n, sc)
	case *parse.PipeNode:
		return a.pipeNoDecl(n, sc)
	}
	return nil
}

// resolve follows a chain of field names from type t, checking each against
// the struct it is looked up in, and records references to Input and Example
// fields.
func (a *analyzer) resolve(t reflect.Type, idents []string, n parse.Node, sc *scope) reflect.Type {
	for _, id := range idents {
		if t == nil {
			return nil
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := t.FieldByName(id)
			if !ok || !f.IsExported() {
				a.fail(sc, n, fmt.Errorf("%w %q in %s (valid: %s)", ErrUnknownField, id, describe(t), strings.Join(fieldNames(t), ", ")))
				return nil
			}
			a.record(t, id, sc)
			t = f.Type
		case reflect.Interface, reflect.Map:
			return nil
		default:
			a.fail(sc, n, fmt.Errorf("%w %q: a %s value has no fields", ErrUnknownField, id, t.Kind()))
			return nil
		}
	}
	return t
}

func (a *analyzer) record(owner reflect.Type, field string, sc *scope) {
	var prefix string
	switch owner {
	case inputType:
		prefix = "Input."
		a.refs[field] = true
	case exampleType:
		prefix = "Example."
	default:
		return
	}
	key := prefix + field
	if a.collect != nil {
		*a.collect = append(*a.collect, key)
	}
	if a.cond || sc.guard[key] {
		return
	}
	if owner == inputType {
		a.req[field] = true
	} else {
		a.reqDemo[field] = true
	}
}

func describe(t reflect.Type) string {
	switch t {
	case inputType:
		return "the template input"
	case exampleType:
		return "a demonstration"
	}
	return t.String()
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			names = append(names, f.Name)
		}
	}
	return names
}
