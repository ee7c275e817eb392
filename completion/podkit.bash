# bash completion for podkit and the podkit-* commands.        -*- shell-script -*-
#
# Source it from ~/.bashrc, or install it as
# /usr/share/bash-completion/completions/podkit with a podkit-VERB symlink to
# it for every command.  Options come from each command's own --help (read
# once per shell and command), verbs from the podkit-* executables on PATH,
# images from podkit-images in the store the command line names (--store DIR,
# else $PODKIT_STORE).  Words are split at blanks only: quoted arguments are
# not understood, which IDs, names and the usual paths never need.

declare -gA _PODKIT_OPTSPECS=()

# _podkit_optspecs EXE: cache the "OPTION [METAVAR]" lines of `EXE --help` in
# _PODKIT_OPTSPECS[EXE] (call it in the completing shell, not in a subshell).
_podkit_optspecs() {
    local exe=$1 line spec out=""
    [[ -z ${_PODKIT_OPTSPECS[$exe]+set} ]] || return 0
    while IFS= read -r line; do
        # argparse: "  -q, --quiet   help", "  --store DIR   help"
        [[ $line =~ ^[[:space:]]+(-[^[:space:]].*)$ ]] || continue
        spec=${BASH_REMATCH[1]%%  *}
        while [[ -n $spec ]]; do
            out+=${spec%%, *}$'\n'
            [[ $spec == *", "* ]] && spec=${spec#*, } || spec=""
        done
    done < <(LC_ALL=C "$exe" --help 2>/dev/null </dev/null)
    _PODKIT_OPTSPECS[$exe]=$out
}

# _podkit_finish CUR: COMPREPLY = the candidate lines on stdin that start with
# CUR, less what bash does not replace (up to the last COMP_WORDBREAKS char).
_podkit_finish() {
    local cur=$1 c i head=""
    COMPREPLY=()
    while IFS= read -r c; do
        [[ -n $c && $c == "$cur"* ]] && COMPREPLY+=("$c")
    done
    for ((i = ${#cur} - 1; i >= 0; i--)); do
        if [[ $COMP_WORDBREAKS == *"${cur:i:1}"* ]]; then
            head=${cur:0:i+1}
            break
        fi
    done
    [[ -n $head ]] && COMPREPLY=("${COMPREPLY[@]#"$head"}")
    if ((${#COMPREPLY[@]} == 1)) && [[ ${COMPREPLY[0]} == *[/:=] ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}

# _podkit_paths PREFIX PART [dirs|aci]: PREFIX+path for the paths starting
# with PART; directories get a slash.
_podkit_paths() {
    local prefix=$1 part=$2 only=${3-} p
    [[ $part == "~/"* ]] && part=$HOME/${part#"~/"}
    while IFS= read -r p; do
        if [[ -d $p ]]; then
            p+=/
        elif [[ $only == dirs || ($only == aci && $p != *.aci && $p != *.aci.*) ]]; then
            continue
        fi
        printf '%s\n' "$prefix$p"
    done < <(compgen -f -- "$part")
}

# _podkit_images LISTER STORE-ARGS...: image IDs and names (also in their
# short Docker forms) of the store.
_podkit_images() {
    local lister=$1 line v
    shift
    while IFS= read -r line; do
        # podkit-images --json: '"id": "ID",' and one '"NAME",' line per name
        if [[ $line =~ ^[[:space:]]*\"id\":\ \"([^\"]+)\" ]]; then
            v=${BASH_REMATCH[1]}
            printf '%s\n' "$v"
            [[ $v == sha256:* ]] && printf '%s\n' "${v#sha256:}"
        elif [[ $line =~ ^[[:space:]]*\"([^\"]+)\",?$ ]]; then
            v=${BASH_REMATCH[1]}
            printf '%s\n' "$v"
            case $v in
                docker.io/library/*) printf '%s\n' "${v#docker.io/library/}" ;;
                docker.io/* | localhost/*) printf '%s\n' "${v#*/}" ;;
            esac
        fi
    done < <("$lister" "$@" -a --json 2>/dev/null </dev/null)
}

# _podkit_pods LISTER [-a] STORE-ARGS...: the full UUIDs of the store's pods (the
# running ones, or all with -a), from the podkit-list next to LISTER.
_podkit_pods() {
    local lister=$1
    shift
    "${lister%podkit-images}podkit-list" -q "$@" 2>/dev/null </dev/null
}

# _podkit_prefix PREFIX: PREFIX in front of every line of stdin.
_podkit_prefix() {
    local line
    while IFS= read -r line; do
        printf '%s%s\n' "$1" "$line"
    done
}

# _podkit_oci_refs DIR: the ref names in an OCI layout's index.json.
_podkit_oci_refs() {
    [[ -r $1/index.json ]] || return 0
    grep -o '"org\.opencontainers\.image\.ref\.name": *"[^"]*"' "$1/index.json" 2>/dev/null |
        sed 's/^[^:]*: *"//; s/"$//'
}

# _podkit_location CUR KIND: sources (fetch) or destinations (export).
_podkit_location() {
    local cur=$1 kind=$2 t rest
    for t in oci-archive docker-archive oci; do
        [[ $cur == "$t:"* ]] || continue
        rest=${cur#"$t:"}
        if [[ $t == oci && $rest == *:* ]]; then
            _podkit_oci_refs "${rest%%:*}" | _podkit_prefix "$t:${rest%%:*}:"
        elif [[ $t == oci ]]; then
            _podkit_paths "$t:" "$rest" dirs
        else
            _podkit_paths "$t:" "$rest"
        fi
        return
    done
    printf '%s\n' oci: oci-archive: docker-archive:
    if [[ $kind == source ]]; then
        _podkit_paths "" "$cur" aci
    else
        _podkit_paths "" "$cur" dirs
    fi
}

# _podkit_value METAVAR PREFIX CUR LISTER STORE-ARGS...: an option's value.
_podkit_value() {
    local metavar=$1 prefix=$2 cur=$3 choices
    shift 3
    case $metavar in
        DIR) _podkit_paths "$prefix" "$cur" dirs ;;
        FILE | PATH) _podkit_paths "$prefix" "$cur" ;;
        REF | ID | "REF|ID" | IMAGE) _podkit_images "$@" | _podkit_prefix "$prefix" ;;
        OS) printf '%s\n' linux freebsd windows | _podkit_prefix "$prefix" ;;
        ARCH)
            printf '%s\n' amd64 arm64 arm 386 ppc64le s390x riscv64 mips64le |
                _podkit_prefix "$prefix"
            ;;
        VARIANT) printf '%s\n' v5 v6 v7 v8 | _podkit_prefix "$prefix" ;;
        \{*\})
            choices=${metavar#\{}
            choices=${choices%\}}
            printf '%s\n' "${choices//,/$'\n'}" | _podkit_prefix "$prefix"
            ;;
    esac
}

# _podkit_exe PODKIT VERB: the podkit-VERB that `podkit VERB` would run.
_podkit_exe() {
    local dir
    if [[ $1 == */* ]]; then
        dir=${1%/*}
    else
        dir=$(type -P "$1") && dir=${dir%/*}
    fi
    if [[ -n $dir && -x $dir/podkit-$2 ]]; then
        printf '%s\n' "$dir/podkit-$2"
    else
        type -P "podkit-$2"
    fi
}

# _podkit_verbs PODKIT: the VERBs of the podkit-VERB executables.
_podkit_verbs() {
    local dir p
    {
        compgen -c podkit-
        if [[ $1 == */* ]]; then
            dir=${1%/*}
            for p in "$dir"/podkit-*; do
                [[ -x $p ]] && printf '%s\n' "${p##*/}"
            done
        fi
    } | sed -n 's/^podkit-//p' | sort -u
    printf '%s\n' help
}

_podkit() {
    local line=${COMP_LINE-}
    local -a words
    if [[ -n $line ]]; then
        line=${line:0:${COMP_POINT:-${#line}}}
        read -ra words <<<"$line"
        [[ -z $line || $line =~ [[:space:]]$ ]] && words+=("")
    else
        words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
    fi
    local n=${#words[@]}
    ((n >= 2)) || return 0
    local cur=${words[n-1]} exe=${words[0]}
    [[ $exe == "~/"* ]] && exe=$HOME/${exe#"~/"}
    local cmd=${exe##*/}

    if [[ $cmd == podkit ]]; then
        if ((n == 2)); then
            if [[ $cur == -* ]]; then
                _podkit_finish "$cur" < <(printf '%s\n' --help --version -h)
            else
                _podkit_finish "$cur" < <(_podkit_verbs "$exe")
            fi
            return 0
        fi
        exe=$(_podkit_exe "$exe" "${words[1]}") || return 0
        cmd=podkit-${words[1]}
        words=("$exe" "${words[@]:2}")
        n=${#words[@]}
    fi

    local lister=podkit-images
    [[ $exe == */* && -x ${exe%/*}/podkit-images ]] && lister=${exe%/*}/podkit-images

    # options and their metavars, from --help
    local -A metavar=()
    local spec opts=""
    _podkit_optspecs "$exe"
    while IFS= read -r spec; do
        [[ -n $spec ]] || continue
        opts+="${spec%% *}"$'\n'
        [[ $spec == *" "* ]] && metavar[${spec%% *}]=${spec#* }
    done <<<"${_PODKIT_OPTSPECS[$exe]}"

    # walk the words before CUR: --store, the option CUR is a value of, the
    # number of positional arguments before CUR
    local i w pos=0 dashdash=0 valopt=""
    local -a store=()
    for ((i = 1; i < n - 1; i++)); do
        w=${words[i]}
        if ((dashdash)) || [[ $w != -?* ]]; then
            pos=$((pos + 1))
        elif [[ $w == -- ]]; then
            dashdash=1
        elif [[ $w == --store=* ]]; then
            store=(--store "${w#--store=}")
        elif [[ $w != *=* && -n ${metavar[$w]-} ]]; then
            if ((i + 1 == n - 1)); then
                valopt=$w
            elif [[ $w == --store ]]; then
                store=(--store "${words[i+1]}")
            fi
            i=$((i + 1))
        fi
    done
    if ((${#store[@]})) && [[ ${store[1]} == "~/"* ]]; then
        store[1]=$HOME/${store[1]#"~/"}
    fi

    if [[ -n $valopt ]]; then
        _podkit_finish "$cur" < <(_podkit_value "${metavar[$valopt]}" "" "$cur" \
            "$lister" "${store[@]}")
    elif ((!dashdash)) && [[ $cur == --*=* && -n ${metavar[${cur%%=*}]-} ]]; then
        _podkit_finish "$cur" < <(_podkit_value "${metavar[${cur%%=*}]}" "${cur%%=*}=" \
            "${cur#*=}" "$lister" "${store[@]}")
    elif ((!dashdash)) && [[ $cur == -* ]]; then
        _podkit_finish "$cur" < <(printf '%s' "$opts")
    else
        _podkit_finish "$cur" < <(_podkit_positional)
    fi
    return 0
}

# _podkit_positional: candidates for the positional argument CUR of CMD
# (uses the caller's cmd, cur, pos, lister and store).
_podkit_positional() {
    case $cmd in
        podkit-fetch) _podkit_location "$cur" source ;;
        podkit-inspect | podkit-rmi) _podkit_images "$lister" "${store[@]}" ;;
        podkit-render)
            if ((pos == 0)); then
                _podkit_images "$lister" "${store[@]}"
            elif ((pos == 1)); then
                _podkit_paths "" "$cur" dirs
            fi
            ;;
        podkit-export)
            if ((pos == 0)); then
                _podkit_images "$lister" "${store[@]}"
            elif ((pos == 1)); then
                _podkit_location "$cur" destination
            fi
            ;;
        podkit-images)
            if ((pos == 0)); then
                _podkit_images "$lister" "${store[@]}" |
                    sed '/^sha[0-9]*[:-]/d; /^[0-9a-f]*$/d; s/:[^:/]*$//' | sort -u
            fi
            ;;
        podkit-prepare | podkit-unit) ((pos == 0)) && _podkit_images "$lister" "${store[@]}" ;;
        podkit-logs) ((pos == 0)) && _podkit_pods "$lister" -a "${store[@]}" ;;
        podkit-enter) ((pos == 0)) && _podkit_pods "$lister" "${store[@]}" ;;
        podkit-stop) _podkit_pods "$lister" "${store[@]}" ;;
        podkit-status | podkit-rm | podkit-run-prepared)
            _podkit_pods "$lister" -a "${store[@]}"
            ;;
        podkit-commit) ((pos == 0)) && _podkit_pods "$lister" -a "${store[@]}" ;;
        podkit-verify) _podkit_images "$lister" "${store[@]}" ;;
        podkit-sign)
            if ((pos == 0)); then
                _podkit_images "$lister" "${store[@]}"
            elif ((pos == 1)); then
                printf '%s\n' docker://
            fi
            ;;
        podkit-gc | podkit-list | podkit-keygen) ;;
        podkit-build) ((pos == 0)) && _podkit_paths "" "$cur" dirs ;;
        *) _podkit_paths "" "$cur" ;;
    esac
}

complete -F _podkit podkit podkit-fetch podkit-images podkit-inspect podkit-render \
    podkit-export podkit-rmi podkit-gc podkit-prepare podkit-run-prepared podkit-list \
    podkit-status podkit-enter podkit-stop podkit-rm podkit-keygen podkit-sign \
    podkit-verify podkit-trust podkit-commit podkit-logs podkit-unit \
    podkit-build
# and every other podkit-* command on PATH now (third-party ones included)
while IFS= read -r _podkit_c; do
    complete -F _podkit "$_podkit_c"
done < <(compgen -c podkit- | sort -u)
unset _podkit_c
