package main

import (
	"fmt"
	"sort"
	"strings"

	"osim/internal/buildinfo"
	"osim/internal/manpage"
)

// completion prints a shell completion script for bash or zsh, made
// from the same table of commands the help text comes from.
func completion(a *app, args []string) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return usagef("osimctl completion", "usage: osimctl completion bash|zsh   (e.g. source <(osimctl completion bash))")
	}
	nouns := make([]string, 0, len(commands))
	for n := range commands {
		nouns = append(nouns, n)
	}
	sort.Strings(nouns)
	var cases strings.Builder
	for _, n := range nouns {
		verbs := make([]string, 0, len(commands[n]))
		for v := range commands[n] {
			verbs = append(verbs, v)
		}
		sort.Strings(verbs)
		fmt.Fprintf(&cases, "\t\t%s) verbs=%q ;;\n", n, strings.Join(verbs, " "))
	}
	top := strings.Join(append(nouns, "help", "version", "completion"), " ")
	flags := "--server --token --token-file --insecure --ca-file -o --timeout --help"
	script := fmt.Sprintf(`# osimctl completion for bash (zsh: through bashcompinit)
_osimctl() {
	local cur=${COMP_WORDS[COMP_CWORD]} noun="" i verbs=""
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--server | --token | --token-file | --ca-file | -o | --timeout) ((i++)); continue ;; # their value
		-*) continue ;;
		esac
		noun=${COMP_WORDS[i]}
		break
	done
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	if [[ -z $noun ]]; then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	case $noun in
%s		completion) verbs="bash zsh" ;;
		help) verbs=%q ;;
	esac
	if ((i + 1 == COMP_CWORD)); then
		COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
	fi
}
`, flags, top, cases.String(), strings.Join(nouns, " "))
	if args[0] == "zsh" {
		script = "autoload -U +X bashcompinit && bashcompinit\n" + script
	}
	fmt.Fprint(a.stdout, script+"complete -F _osimctl osimctl\n")
	return nil
}

// manPage prints osimctl's man page: the usage, then every command's.
func manPage(a *app) error {
	nouns := make([]string, 0, len(commands))
	for n := range commands {
		nouns = append(nouns, n)
	}
	sort.Strings(nouns)
	secs := []manpage.Section{{Title: "usage", Text: usage}}
	for _, n := range nouns {
		secs = append(secs, manpage.Section{Title: "osimctl " + n, Text: nounUsage(n)})
	}
	_, err := a.stdout.Write(manpage.Render(manpage.Page{Name: "osimctl", Summary: "drive the osim manager from the command line",
		Version: buildinfo.Get().Short(), Sections: secs}))
	return err
}
