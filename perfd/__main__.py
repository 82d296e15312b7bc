from perfd.cli import main

raise SystemExit(main())
