use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use streamlake::LocalStack;
use streamlake::cli::{Cli, Command, DemoArgs, TailArgs, UpArgs};
use streamlake::harness::demo;
use streamlake::serve::{self, Serving, banner};

#[tokio::main]
async fn main() -> ExitCode {
    streamlake_core::report::exit(run().await)
}

async fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    streamlake::harness::progress::enable();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(format!(
                    "{},{}",
                    cli.command.default_log_filter(),
                    streamlake_core::aws::SDK_LOG_DIRECTIVE
                ))
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Up(args) => up(args).await,
        Command::Demo(args) => run_demo(args).await,
        Command::Status(args) => args.run().await.map(|()| ExitCode::SUCCESS),
        Command::Dataset(command) => command.run().await.map(|()| ExitCode::SUCCESS),
        Command::Tail(args) => tail(args).await,
    }
}

async fn up(args: UpArgs) -> Result<ExitCode> {
    let stack = LocalStack::start(args.stack.config()?).await?;
    let serving = Serving::start(&stack, Duration::from_secs(args.status_window)).await?;
    print!("{}", banner(&stack, serving.endpoint(), &args.generate()));
    serving.until(&stack, serve::stop_requested()).await;
    eprintln!(
        "stopping: delivering what is buffered (up to {:?})",
        streamlake::emulated::shutdown::STOP_GRACE
    );
    eprint!("{}", stack.stop().await);
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(args: DemoArgs) -> Result<ExitCode> {
    let options = args.options()?;
    let mut config = args.stack.config()?;
    let summaries = demo::fill_summaries(&mut config);
    if !summaries.is_empty() {
        eprintln!(
            "streamlake: dataset {} has window summaries ({}): the demo turns the consumer's tumbling windows on ({} s; --tumbling-window SECONDS to choose)",
            config.dataset.name(),
            summaries.join(", "),
            demo::SUMMARY_WINDOW.as_secs()
        );
    }
    let stack = LocalStack::start(config).await?;
    let report = match demo::run(&stack, &options).await {
        Ok(report) => report,
        Err(e) => {
            stack.stop().await;
            return Err(e.into());
        }
    };
    println!("{report}");
    let queries_ok = demo::run_follow_up_queries(&stack, &report).await;
    stack.stop().await;
    Ok(if report.reconciles() && queries_ok? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn tail(args: TailArgs) -> Result<ExitCode> {
    let options = args.options()?;
    let client = aws_sdk_kinesis::Client::new(&streamlake_core::aws::load_config().await);
    let stop = serve::stop_requested();
    let summary =
        streamlake::tail::tail(&client, &options, &mut std::io::stdout().lock(), stop).await?;
    eprintln!(
        "{} records printed of {} read",
        summary.printed, summary.read
    );
    Ok(ExitCode::SUCCESS)
}
