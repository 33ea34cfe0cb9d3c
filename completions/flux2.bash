_flux2_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _FLUX2_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _flux2_completion flux2
