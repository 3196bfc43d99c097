from tool_envs.cli import main

raise SystemExit(main())
