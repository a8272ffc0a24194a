module corral.bench/go_longpoll

go 1.19
