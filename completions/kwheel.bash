# bash completion for kwheel(1)                              -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# Commands and options are read from the binary's own --help, so the
# completion always matches the kwheel being completed.

# The option words of "kwheel CMD --help" (or of "kwheel --help" with no CMD).
_kwheel_options()
{
	"$1" ${2:+"$2"} --help 2>/dev/null |
		sed -n 's/^  \(-[A-Za-z0-9], \)\{0,1\} *\(--[a-z0-9-]*\).*/\2/p'
	if [[ -n $2 ]]; then
		"$1" "$2" --help 2>/dev/null | sed -n 's/^  \(-[A-Za-z0-9]\), --.*/\1/p'
	fi
}

# The metavariable an option takes ("DIR", "N"), empty for a flag.
_kwheel_metavar()
{
	local long metavar short
	"$1" "$2" --help 2>/dev/null |
		sed -n 's/^  \(-[A-Za-z0-9]\)\{0,1\}[, ]* \(--[a-z0-9-]*\) \([A-Z][A-Z0-9:_.]*\)\( .*\)\{0,1\}$/\2 \3 \1/p' |
		while read -r long metavar short; do
			if [[ $3 == "$long" || $3 == "$short" ]]; then
				printf '%s\n' "$metavar"
			fi
		done
}

_kwheel()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local kw=${COMP_WORDS[0]} cmd="" i metavar
	COMPREPLY=()
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W '--help --version --verbose --quiet' -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$("$kw" --help 2>/dev/null |
				sed -n '/^commands:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p')" -- "$cur"))
		fi
		return
	fi
	if [[ $prev == -* && $prev != "$cmd" ]]; then
		metavar=$(_kwheel_metavar "$kw" "$cmd" "$prev")
		case $metavar in
		'') ;;
		DIR | DIRS) COMPREPLY=($(compgen -d -- "$cur")); return ;;
		N | TAG | NAME | SUFFIX | GLOB | PATH | P1:P2 | OLD) return ;;
		*) COMPREPLY=($(compgen -f -- "$cur")); return ;;
		esac
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_kwheel_options "$kw" "$cmd")" -- "$cur"))
		return
	fi
	case $cmd in
	show | repair | km)
		# wheels, and directories searched for them
		COMPREPLY=($(compgen -d -- "$cur") $(compgen -f -X '!*.whl' -- "$cur"))
		;;
	*)
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	esac
}
complete -o filenames -F _kwheel kwheel
