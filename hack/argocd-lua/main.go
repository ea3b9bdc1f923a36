// Command argocd-lua runs Argo CD resource customizations (health checks and resource
// actions) in gopher-lua, the Lua VM Argo CD embeds, set up the way Argo CD sets it up for
// scripts given in argocd-cm: no standard libraries but base, package and table, and a
// one-second deadline. Argo CD's own module does not build on this Go (its gitops-engine
// dependency fails), so this is the smallest faithful harness: the scripts that pass here
// are the ones a user pastes into argocd-cm.
//
// Usage:
//
//	argocd-lua test ROOT                   run every health_test.yaml and actions/action_test.yaml
//	                                       under ROOT (resource_customizations/<group>/<Kind>/)
//	argocd-lua health KINDDIR FILE         print the health of the object in FILE
//	argocd-lua discovery KINDDIR FILE      print the actions offered for it
//	argocd-lua action KINDDIR NAME FILE    print the object after action NAME
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// The health codes Argo CD accepts from a script; anything else becomes Unknown.
var healthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Suspended": true,
	"Degraded": true, "Missing": true, "Unknown": true,
}

type health struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

type action struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

func readObject(path string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	obj := map[string]interface{}{}
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// run executes script with the global `obj` and returns the value it returned.
func run(script string, obj map[string]interface{}) (interface{}, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret := l.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("the script returned %s, not a table", ret.Type())
	}
	return fromLua(ret), nil
}

func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch t := v.(type) {
	case bool:
		return lua.LBool(t)
	case float64:
		return lua.LNumber(t)
	case string:
		return lua.LString(t)
	case []interface{}:
		arr := l.CreateTable(len(t), 0)
		for _, item := range t {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(t))
		for k, item := range t {
			tbl.RawSetString(k, toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// fromLua turns a Lua value back into JSON data. A table with keys 1..n is a list, and so
// is an empty table, as Argo CD's JSON encoder has it; restoreEmptyObjects then puts back
// the empty objects of the input, as Argo CD does after an action.
func fromLua(v lua.LValue) interface{} {
	switch t := v.(type) {
	case lua.LBool:
		return bool(t)
	case lua.LNumber:
		f := float64(t)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case lua.LString:
		return string(t)
	case *lua.LTable:
		n := t.MaxN()
		empty := t.Len() == 0 && !hasKeys(t)
		if n > 0 || empty {
			list := make([]interface{}, 0, n)
			for i := 1; i <= n; i++ {
				list = append(list, fromLua(t.RawGetInt(i)))
			}
			return list
		}
		m := map[string]interface{}{}
		t.ForEach(func(k, val lua.LValue) {
			if s, ok := k.(lua.LString); ok {
				m[string(s)] = fromLua(val)
			}
		})
		return m
	}
	return nil
}

func hasKeys(t *lua.LTable) bool {
	k, _ := t.Next(lua.LNil)
	return k != lua.LNil
}

// restoreEmptyObjects turns an empty list in out back into an empty object where the
// input had an object at that place (Lua cannot tell the two apart).
func restoreEmptyObjects(out, in interface{}) interface{} {
	switch o := out.(type) {
	case map[string]interface{}:
		i, ok := in.(map[string]interface{})
		if !ok {
			return out
		}
		for k, v := range o {
			if old, found := i[k]; found {
				o[k] = restoreEmptyObjects(v, old)
			}
		}
		return o
	case []interface{}:
		if old, ok := in.(map[string]interface{}); ok && len(o) == 0 {
			return old
		}
		if old, ok := in.([]interface{}); ok {
			for idx := range o {
				if idx < len(old) {
					o[idx] = restoreEmptyObjects(o[idx], old[idx])
				}
			}
		}
		return o
	}
	return out
}

// normalise round-trips data through JSON so that values compare by content.
func normalise(v interface{}) (interface{}, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out interface{}
	err = json.Unmarshal(raw, &out)
	return out, err
}

func runHealth(kindDir string, obj map[string]interface{}) (health, error) {
	script, err := os.ReadFile(filepath.Join(kindDir, "health.lua"))
	if err != nil {
		return health{}, err
	}
	ret, err := run(string(script), obj)
	if err != nil {
		return health{}, err
	}
	m, ok := ret.(map[string]interface{})
	if !ok {
		return health{}, errors.New("health.lua returned a list, not a table with status")
	}
	h := health{}
	h.Status, _ = m["status"].(string)
	h.Message, _ = m["message"].(string)
	if !healthCodes[h.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return h, nil
}

func runDiscovery(kindDir string, obj map[string]interface{}) ([]action, error) {
	script, err := os.ReadFile(filepath.Join(kindDir, "actions", "discovery.lua"))
	if err != nil {
		return nil, err
	}
	ret, err := run(string(script), obj)
	if err != nil {
		return nil, err
	}
	m, ok := ret.(map[string]interface{})
	if !ok {
		return nil, errors.New("discovery.lua returned a list, not a table keyed by action name")
	}
	out := []action{}
	for name, v := range m {
		a := action{Name: name}
		if opts, ok := v.(map[string]interface{}); ok {
			a.Disabled, _ = opts["disabled"].(bool)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func runAction(kindDir, name string, obj map[string]interface{}) (interface{}, error) {
	script, err := os.ReadFile(filepath.Join(kindDir, "actions", name, "action.lua"))
	if err != nil {
		return nil, err
	}
	ret, err := run(string(script), obj)
	if err != nil {
		return nil, err
	}
	if _, ok := ret.(map[string]interface{}); !ok {
		return nil, errors.New("action.lua returned a list: only patch actions are used here")
	}
	return normalise(restoreEmptyObjects(ret, obj))
}

func printJSON(v interface{}) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func main() {
	if err := dispatch(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-lua:", err)
		os.Exit(1)
	}
}

func dispatch(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: argocd-lua test ROOT | health KINDDIR FILE | discovery KINDDIR FILE | action KINDDIR NAME FILE")
	}
	switch {
	case args[0] == "test" && len(args) == 2:
		return testAll(args[1])
	case args[0] == "health" && len(args) == 3:
		obj, err := readObject(args[2])
		if err != nil {
			return err
		}
		h, err := runHealth(args[1], obj)
		if err != nil {
			return err
		}
		return printJSON(h)
	case args[0] == "discovery" && len(args) == 3:
		obj, err := readObject(args[2])
		if err != nil {
			return err
		}
		a, err := runDiscovery(args[1], obj)
		if err != nil {
			return err
		}
		return printJSON(a)
	case args[0] == "action" && len(args) == 4:
		obj, err := readObject(args[3])
		if err != nil {
			return err
		}
		out, err := runAction(args[1], args[2], obj)
		if err != nil {
			return err
		}
		return printJSON(out)
	}
	return fmt.Errorf("unknown command or wrong arguments: %v", args)
}

// The layout of Argo CD's health_test.yaml and actions/action_test.yaml.
type healthTests struct {
	Tests []struct {
		HealthStatus health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

type actionTests struct {
	DiscoveryTests []struct {
		InputPath string   `json:"inputPath"`
		Result    []action `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action             string `json:"action"`
		InputPath          string `json:"inputPath"`
		ExpectedOutputPath string `json:"expectedOutputPath"`
	} `json:"actionTests"`
}

func readYAML(path string, into interface{}) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(raw, into)
}

// testAll runs the test files of every <group>/<Kind> under root and reports each case.
func testAll(root string) error {
	kinds, err := filepath.Glob(filepath.Join(root, "*", "*", "health.lua"))
	if err != nil {
		return err
	}
	if len(kinds) == 0 {
		return fmt.Errorf("no <group>/<Kind>/health.lua under %s", root)
	}
	passed, failed := 0, 0
	report := func(kindDir, what string, err error) {
		rel, _ := filepath.Rel(root, kindDir)
		if err != nil {
			failed++
			fmt.Printf("FAIL %s %s: %v\n", rel, what, err)
			return
		}
		passed++
		fmt.Printf("ok   %s %s\n", rel, what)
	}
	for _, h := range kinds {
		dir := filepath.Dir(h)
		testKind(dir, report)
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		return errors.New("customization tests failed")
	}
	return nil
}

func testKind(dir string, report func(string, string, error)) {
	var ht healthTests
	if err := readYAML(filepath.Join(dir, "health_test.yaml"), &ht); err != nil {
		report(dir, "health_test.yaml", err)
		return
	}
	for _, tc := range ht.Tests {
		report(dir, "health "+tc.InputPath, checkHealth(dir, tc.InputPath, tc.HealthStatus))
	}
	var at actionTests
	if err := readYAML(filepath.Join(dir, "actions", "action_test.yaml"), &at); err != nil {
		report(dir, "actions/action_test.yaml", err)
		return
	}
	for _, tc := range at.DiscoveryTests {
		report(dir, "discovery "+tc.InputPath, checkDiscovery(dir, tc.InputPath, tc.Result))
	}
	for _, tc := range at.ActionTests {
		report(dir, "action "+tc.Action+" "+tc.InputPath,
			checkAction(dir, tc.Action, tc.InputPath, tc.ExpectedOutputPath))
	}
}

func checkHealth(dir, input string, want health) error {
	obj, err := readObject(filepath.Join(dir, input))
	if err != nil {
		return err
	}
	got, err := runHealth(dir, obj)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("got %+v, want %+v", got, want)
	}
	return nil
}

func checkDiscovery(dir, input string, want []action) error {
	obj, err := readObject(filepath.Join(dir, "actions", input))
	if err != nil {
		return err
	}
	got, err := runDiscovery(dir, obj)
	if err != nil {
		return err
	}
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("got %+v, want %+v", got, want)
	}
	return nil
}

func checkAction(dir, name, input, expected string) error {
	obj, err := readObject(filepath.Join(dir, "actions", input))
	if err != nil {
		return err
	}
	got, err := runAction(dir, name, obj)
	if err != nil {
		return err
	}
	wantObj, err := readObject(filepath.Join(dir, "actions", expected))
	if err != nil {
		return err
	}
	want, err := normalise(wantObj)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		return fmt.Errorf("got %s\nwant %s", gotJSON, wantJSON)
	}
	return nil
}
