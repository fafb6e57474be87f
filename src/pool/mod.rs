pub mod wsgi_args;
