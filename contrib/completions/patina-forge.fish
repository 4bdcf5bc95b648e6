complete -c patina-forge -s C -l path -d 'The project: a directory inside a git repository [default: the current directory]' -r -F
complete -c patina-forge -l repo -d 'A reference repository registered with patina' -r
complete -c patina-forge -l db -d 'The database to use instead of the project\'s' -r -F
complete -c patina-forge -l forge -d 'The forge repository, when origin does not tell (bare mirrors, forks, local remotes)' -r
complete -c patina-forge -l limit -d 'Resolve at most N pending refs in the foreground, then exit' -r
complete -c patina-forge -l lines -d 'With --log: how many lines' -r
complete -c patina-forge -l generate -d 'Print a file made from this binary, and exit: the man page, a completion script, or what runs --resume hourly for every registered repository (--all) or for the reference repository NAME' -r
complete -c patina-forge -l completions -d 'The same as --generate complete-SHELL, kept for scripts written before it' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c patina-forge -l forge-kind -d 'What the forge is, when its host does not tell: github, github-enterprise or gitea' -r -f -a "github\t'github.com'
github-enterprise\t'Any other host speaking GitHub\'s API (REST at /api/v3, GraphQL at /api/graphql)'
gitea\t'Gitea, Forgejo, Codeberg (REST at /api/v1)'"
complete -c patina-forge -l api-url -d 'The forge\'s API base [default: the one the repository\'s latest run used, else https://api.github.com, https://HOST/api/v3 for GitHub Enterprise, https://HOST/api/v1 for Gitea]' -r
complete -c patina-forge -l delay -d 'Least spacing between two requests to one API host, shared by every patina-forge process of this user' -r
complete -c patina-forge -l reserve -d 'Part of the account\'s rate limit left to your other tools (gh, CI, editors)' -r
complete -c patina-forge -l timeout -d 'Longest wait for one answer, before it counts as a failure and is asked again' -r
complete -c patina-forge -l api -d 'Which of GitHub\'s APIs resolves the backlog: auto, graphql or rest' -r -f -a "auto\t'GraphQL when a token is set and the forge serves it, else REST'
graphql\t'GraphQL batches; refused without a token or on Gitea'
rest\t'REST alone, even with a token'"
complete -c patina-forge -l all -d 'Every repository registered with patina, and the project run from, with any mode'
complete -c patina-forge -l status -d 'Show resolved / pending / failed refs of the backlog; reads only, never writes'
complete -c patina-forge -l sync -d 'Drain the whole backlog in the background: print its PID and log, return at once'
complete -c patina-forge -l resume -d 'Drain everything pending in the foreground, then exit; for cron and timers'
complete -c patina-forge -l log -d 'Print the end of the sync log'
complete -c patina-forge -l follow -d 'With --log: keep printing new lines until interrupted'
complete -c patina-forge -l stop -d 'Ask a background sync to stop after its request in flight, and wait until it has'
complete -c patina-forge -l full -d 'With --resume or --sync: refresh everything, not only what changed since the last refresh (still paced)'
complete -c patina-forge -l offline -d 'Discovery without any request: skip learning the newest issue number'
complete -c patina-forge -l json -d 'With --status: print one JSON object instead of text (stable field names)'
complete -c patina-forge -s h -l help -d 'Print help (see more with \'--help\')'
complete -c patina-forge -s V -l version -d 'Print version'
