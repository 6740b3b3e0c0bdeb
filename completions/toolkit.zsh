
#compdef toolkit

_toolkit_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _TOOLKIT_COMPLETE=complete_zsh toolkit)
}

compdef _toolkit_completion toolkit

