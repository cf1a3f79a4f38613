from whathappens.cli import main

raise SystemExit(main())
