// Command argocd-health runs an Argo CD Lua health script over one object, in gopher-lua,
// the Lua VM Argo CD uses. The object is read as JSON from stdin; the script's result is
// printed as JSON {"status": ..., "message": ...}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch t := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(t)
	case float64:
		return lua.LNumber(t)
	case string:
		return lua.LString(t)
	case []interface{}:
		table := l.NewTable()
		for _, item := range t {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]interface{}:
		table := l.NewTable()
		for k, item := range t {
			table.RawSetString(k, toLua(l, item))
		}
		return table
	default:
		return lua.LString(fmt.Sprint(t))
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var obj interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&obj); err != nil {
		fmt.Fprintln(os.Stderr, "reading the object:", err)
		os.Exit(2)
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer l.Close()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(script)); err != nil {
		fmt.Fprintln(os.Stderr, "running the script:", err)
		os.Exit(1)
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		fmt.Fprintln(os.Stderr, "the script did not return a table")
		os.Exit(1)
	}
	out := map[string]string{
		"status":  result.RawGetString("status").String(),
		"message": result.RawGetString("message").String(),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
