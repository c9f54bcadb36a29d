SELECT bench_page();
