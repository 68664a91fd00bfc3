from looplint.cli import main

raise SystemExit(main())
